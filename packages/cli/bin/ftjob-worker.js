#!/usr/bin/env -S node --initial-old-space-size=64
// `ftjob worker ARGS...` started with the V8 options a worker needs (WORKER_NODE_ARGS in
// @finetune/controller, which a test keeps equal to this line's): V8 takes them only on the
// command line, not in NODE_OPTIONS, so worker pods run this instead of `ftjob worker`.
process.argv.splice(2, 0, "worker");
await import("./ftjob.js");
