#!/usr/bin/env python3
"""Measure a `kind = "s3"` dataset against a moto S3 server on loopback: the first `run`
(backup and restore test), a no-change `run`, and `restore --to-bucket --verify`, each as a
whole process (`/usr/bin/time -v`: wall time, peak RSS), with the object GETs the server logged.
Peak RSS that does not grow with the largest object shows the streaming; zero GETs on the
no-change run shows that unchanged objects are not read again.

Usage: s3_dataset.py OBJECTS OBJECT_BYTES LARGE_BYTES   (env BULWARK_BIN: default
target/release/bulwark). Needs moto_server and boto3. Everything lives in a temporary directory.
"""
import io, os, socket, subprocess, time, json, sys, boto3, tempfile, shutil, re
from boto3.s3.transfer import TransferConfig
BIN = os.environ.get("BULWARK_BIN", "target/release/bulwark")
work = tempfile.mkdtemp(prefix="bulwark-s3-dataset-")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
log = open(os.path.join(work, "moto.log"), "w")
moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=log)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close(); break
        except OSError: time.sleep(0.1)
    ep = f"http://127.0.0.1:{port}"
    c = boto3.client("s3", endpoint_url=ep, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    for b in ["src", "dst"]: c.create_bucket(Bucket=b)
    N, SIZE, BIG = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for i in range(N):
        c.put_object(Bucket="src", Key=f"p/d{i%10}/o{i}.bin", Body=os.urandom(SIZE), ContentType="application/x-test", Metadata={"n": str(i)})
    c.upload_fileobj(io.BytesIO(os.urandom(BIG)), "src", "p/big.bin", Config=TransferConfig(multipart_chunksize=16<<20))
    url = f"s3://src/p?region=us-east-1&endpoint={ep}&allow_http=true"
    cfg = os.path.join(work, "bulwark.toml")
    open(cfg, "w").write(f'[repositories.primary]\nurl = "{work}/repo"\n[datasets.media]\nkind = "s3"\nurl = "{url}"\nschedule = "daily at 02:00"\n')
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", BULWARK_PASSWORD="x")
    def gets():
        log.flush(); time.sleep(0.3)
        return len([l for l in open(os.path.join(work, "moto.log")) if '"GET /src/p/' in l])
    def timed(args):
        t = time.time()
        p = subprocess.run(["/usr/bin/time", "-v", BIN] + args, env=env, capture_output=True, text=True)
        dt = time.time() - t
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        if p.returncode != 0: print(p.stdout[-2000:], p.stderr[-2000:])
        return dt, int(rss.group(1)) // 1024, p.stdout
    total = N * SIZE + BIG
    print(f"source: {N} objects of {SIZE} B + one of {BIG>>20} MiB (multipart) = {total/2**20:.0f} MiB")
    g0 = gets()
    dt, rss, out = timed(["run", "-c", cfg, "--init", "--json", "media"])
    steps = json.loads(out)["datasets"][0]["steps"]
    print(f"first run (backup + restore test): {dt:.1f}s, max RSS {rss} MiB, object GETs {gets()-g0}; " + "; ".join(f"{x['step']} {x['duration_s']:.1f}s {x['summary']}" for x in steps))
    g0 = gets()
    dt, rss, out = timed(["run", "-c", cfg, "--json", "media"])
    steps = json.loads(out)["datasets"][0]["steps"]
    print(f"no-change run: {dt:.1f}s, max RSS {rss} MiB, object GETs {gets()-g0}; " + "; ".join(f"{x['step']} {x['duration_s']:.1f}s {x['summary']}" for x in steps))
    dst = f"s3://dst/r?region=us-east-1&endpoint={ep}&allow_http=true"
    dt, rss, out = timed(["restore", "latest", "-r", f"{work}/repo", "--dataset", "media", "--to-bucket", dst, "--verify", "--json"])
    r = json.loads(out)
    print(f"restore --to-bucket --verify: {dt:.1f}s, max RSS {rss} MiB, {r['objects']} objects, {r['bytes']/2**20:.0f} MiB, verified {r['verified']}")
finally:
    moto.kill(); moto.wait(); shutil.rmtree(work, ignore_errors=True)
