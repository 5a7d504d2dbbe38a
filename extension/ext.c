// The C side of the loadable extension: the entry point SQLite looks for,
// and the SQL functions. It calls SQLite only through the sqlite3_api
// pointer the host passes in (psanford/sqlite3vfs, built with the tag
// SQLITE3VFS_LOADABLE_EXT, defines that pointer; this file only declares
// it), and only functions that exist in SQLite 3.31.
#include <stdlib.h>
#include <string.h>
#include <sqlite3ext.h>
#ifdef LITESTREAM_LOADABLE
// Defined by sqlite3vfs.c (SQLITE_EXTENSION_INIT1); defining it twice fails
// to link.
SQLITE_EXTENSION_INIT3
#else
// The untagged build (see tag_plain.go) has no sqlite3vfs definition.
SQLITE_EXTENSION_INIT1
#endif

#include "_cgo_export.h"

// fn_call runs one litestream_* SQL function by asking the connection's
// main database file for it through SQLITE_FCNTL_PRAGMA with the name
// "litestream:<function>" (see vfs/pragma.go). The answer's first byte
// gives its type: i, r, t, n, or e for an error message.
static void fn_call(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const char *fn = (const char *)sqlite3_user_data(ctx);
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  char *az[3] = {0, (char *)fn, 0};
  char txid[17];
  if (argc > 0) {
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
      sqlite3_result_error(ctx, "litestream_set_time: the target is NULL; use 'latest', a TXID or a time", -1);
      return;
    }
    // A TXID written as text is hex everywhere (vfs.ParseTarget); an SQL
    // integer is a number, not a notation, so it goes on as its value in
    // 16 hex digits: litestream_set_time(litestream_txid()) round-trips.
    if (sqlite3_value_type(argv[0]) == SQLITE_INTEGER) {
      sqlite3_snprintf(sizeof(txid), txid, "%016llx", (unsigned long long)sqlite3_value_int64(argv[0]));
      az[2] = txid;
    } else {
      az[2] = (char *)sqlite3_value_text(argv[0]);
    }
  }
  int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_PRAGMA, az);
  if (rc == SQLITE_NOTFOUND) {
    sqlite3_result_error(ctx, "litestream functions need a main database opened with vfs=litestream", -1);
    return;
  }
  if (rc != SQLITE_OK || az[0] == 0) {
    sqlite3_result_error(ctx, "litestream function failed (see the log)", -1);
    if (az[0]) sqlite3_free(az[0]);
    return;
  }
  const char *v = az[0] + 1;
  switch (az[0][0]) {
  case 'i': sqlite3_result_int64(ctx, strtoll(v, 0, 10)); break;
  case 'r': sqlite3_result_double(ctx, strtod(v, 0)); break;
  case 't': sqlite3_result_text(ctx, v, -1, SQLITE_TRANSIENT); break;
  case 'n': sqlite3_result_null(ctx); break;
  case 'e': sqlite3_result_error(ctx, v, -1); break;
  default: sqlite3_result_error(ctx, "litestream function: malformed answer", -1); break;
  }
  sqlite3_free(az[0]);
}

static int register_functions(sqlite3 *db) {
  static const struct {
    const char *name;
    int nargs;
    const char *fn;
  } fns[] = {
      {"litestream_txid", 0, "litestream:txid"},
      {"litestream_time", 0, "litestream:time"},
      {"litestream_lag", 0, "litestream:lag"},
      {"litestream_error", 0, "litestream:error"},
      {"litestream_stats", 0, "litestream:stats"},
      {"litestream_set_time", 1, "litestream:set_time"},
  };
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    int rc = sqlite3_create_function(db, fns[i].name, fns[i].nargs, SQLITE_UTF8, (void *)fns[i].fn, fn_call, 0, 0);
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

// auto_init gives every connection opened after the load the SQL functions.
// It never fails: a failing auto-extension makes every later sqlite3_open
// in the process fail.
static int auto_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  (void)pzErrMsg;
  (void)pApi;
  register_functions(db);
  return SQLITE_OK;
}

// sqlite3_litestreamvfs_init is the name SQLite derives from the file name
// litestream_vfs.so, so `.load litestream_vfs` needs no entry point.
int sqlite3_litestreamvfs_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi) {
  SQLITE_EXTENSION_INIT2(pApi);
  char *err = litestreamExtInit();
  if (err) {
    if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("litestream_vfs: %s", err);
    free(err);
    return SQLITE_ERROR;
  }
  int rc = register_functions(db);
  if (rc == SQLITE_OK) rc = sqlite3_auto_extension((void (*)(void))auto_init);
  if (rc != SQLITE_OK) {
    if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("litestream_vfs: cannot register SQL functions (error %d)", rc);
    return rc;
  }
  // Stay loaded for the life of the process: the VFS and the Go runtime
  // cannot be unloaded.
  return SQLITE_OK_LOAD_PERMANENTLY;
}
