# A reader process for the writer-daemon test. Prints one JSON line per
# query: the TXID it read, the primary's sequence number and aggregate it
# saw, and the wall time; or the error.
# argv: extension path, replica URL, seconds, mode ("short": one read
# transaction per query; "long": one read transaction for the whole run).
import json, sqlite3, sys, time

ext, replica, seconds, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)

db = sqlite3.connect("file:app.db?vfs=litestream&replica=" + replica, uri=True, isolation_level=None)
Q = "select (select seq from meta), count(*), total(v), total(length(pad)) from t"
if mode == "long":
    # Small caches so that the transaction keeps reading from the remote.
    db.execute("pragma cache_size = 4")

def emit(**kw):
    kw["t"] = time.time()
    print(json.dumps(kw), flush=True)

end = time.time() + seconds
if mode == "long":
    try:
        db.execute("begin")
        while time.time() < end:
            row = db.execute(Q).fetchone()
            emit(txid=db.execute("select litestream_txid()").fetchone()[0], seq=row[0], agg=list(row[1:]))
            time.sleep(0.05)
        db.execute("commit")
    except sqlite3.Error as e:
        emit(error=str(e))
else:
    while time.time() < end:
        try:
            db.execute("begin")
            row = db.execute(Q).fetchone()
            txid = db.execute("select litestream_txid()").fetchone()[0]
            db.execute("commit")
            emit(txid=txid, seq=row[0], agg=list(row[1:]))
        except sqlite3.Error as e:
            try:
                db.execute("rollback")
            except sqlite3.Error:
                pass
            emit(error=str(e))
        time.sleep(0.01)
