#!/usr/bin/env node
import { main } from "../dist/main.js";

const code = await main(process.argv);
process.exitCode = code;
if (code !== 0) {
  // The command already failed and said why; a connection torn down on the way out (a dead peer's
  // stream erroring after the ring closed) must not turn its exit code (which tells the controller
  // whether to retry) into a generic 1.
  const late = (err) => process.stderr.write(`ftjob: while exiting: ${err?.message ?? err}\n`);
  process.on("uncaughtException", late);
  process.on("unhandledRejection", late);
}
