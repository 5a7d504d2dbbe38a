# A reader process: queries a replica through the extension for a while and
# prints one JSON line per read transaction: the TXID it saw, the query's
# result, and the wall time. argv: extension path, replica URL, seconds.
import json, sqlite3, sys, time

ext, replica, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)

db = sqlite3.connect("file:app.db?vfs=litestream&replica=" + replica, uri=True, isolation_level=None)
end = time.time() + seconds
while time.time() < end:
    try:
        db.execute("begin")
        agg = db.execute("select count(*), total(v), total(length(pad)) from t").fetchone()
        txid = db.execute("select litestream_txid()").fetchone()[0]
        db.execute("commit")
        print(json.dumps({"txid": txid, "agg": list(agg), "t": time.time()}), flush=True)
    except sqlite3.Error as e:
        try:
            db.execute("rollback")
        except sqlite3.Error:
            pass
        print(json.dumps({"error": str(e), "t": time.time()}), flush=True)
    time.sleep(0.01)
