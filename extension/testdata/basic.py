# Loads the extension into Python's sqlite3 (Debian's python3) and checks the
# fixture through several connections and threads. Prints "ok" or fails.
# argv: extension path (without .so), fixture replica URL
import json, signal, sqlite3, sys, threading

ext, replica = sys.argv[1], sys.argv[2]

def sigcgt():
    for line in open("/proc/self/status"):
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)

before_sigint = signal.getsignal(signal.SIGINT)
cgt_before = sigcgt()

loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(ext)
loader.enable_load_extension(False)

# Loading again (another connection, as a second library user would) is
# harmless: the VFS is registered once per process.
again = sqlite3.connect(":memory:")
again.enable_load_extension(True)
again.load_extension(ext)

cgt_after = sigcgt()
added = sorted(i + 1 for i in range(64) if (cgt_after >> i) & 1 and not (cgt_before >> i) & 1)

def connect():
    return sqlite3.connect("file:app.db?vfs=litestream&replica=" + replica, uri=True, check_same_thread=False)

USERS = "select count(*), total(id), total(length(name)) from users"
EVENTS = "select count(*), total(id), total(user_id), total(length(payload)), hex(substr(max(payload),1,8)) from events"

result = {"added_signals": added, "sigint_kept": signal.getsignal(signal.SIGINT) is before_sigint}

# Connections opened after the load get the SQL functions (auto-extension).
db = connect()
result["latest"] = [list(db.execute(USERS).fetchone()), list(db.execute(EVENTS).fetchone()),
                    db.execute("select litestream_txid()").fetchone()[0]]
result["set5"] = db.execute("select litestream_set_time(5)").fetchone()[0]
result["at5"] = [list(db.execute(USERS).fetchone()), db.execute("select litestream_txid()").fetchone()[0]]
result["latest_again"] = db.execute("select litestream_set_time('latest')").fetchone()[0]
try:
    db.execute("insert into users(id, name) values (1e9, 'x')")
    result["write"] = "succeeded"
except sqlite3.OperationalError as e:
    result["write"] = str(e)

# Threads, each with its own connection, in parallel.
errors, counts = [], []
def worker(i):
    try:
        c = connect()
        for _ in range(20):
            counts.append(c.execute(USERS).fetchone()[0])
        c.close()
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
result["threads"] = {"errors": errors, "counts": sorted(set(counts)), "n": len(counts)}

# Python's SIGINT handling still works after the load.
try:
    signal.raise_signal(signal.SIGINT)
    result["keyboard_interrupt"] = False
except KeyboardInterrupt:
    result["keyboard_interrupt"] = True

print(json.dumps(result))
