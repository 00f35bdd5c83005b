// A Firestore emulator (Firestore v1 gRPC API, in memory) on 127.0.0.1 for the iGait status tests.
// Usage: node server.js [port]   (default $FIRESTORE_EMULATOR_PORT, else 0 = any free port)
// Prints "ready <port>" on stdout once the port is bound. Stops on SIGTERM/SIGINT or when stdin closes,
// so a parent that dies never leaves it behind.
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

const wanted = Number(process.argv[2] || process.env.FIRESTORE_EMULATOR_PORT || 0);
const emulator = new FirestoreServer();

function stop() {
  emulator.stop();
  process.exit(0);
}

// FirestoreServer.start() binds 0.0.0.0; bind its gRPC server to the loopback address only.
emulator.server.bindAsync(`127.0.0.1:${wanted}`, ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`cannot start the Firestore emulator on 127.0.0.1:${wanted}: ${err.message}\n`);
    process.exit(1);
  }
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
  process.stdout.write(`ready ${port}\n`);
});
