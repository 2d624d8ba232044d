// Copies the generated API types next to the compiled declarations and bundles the client into one
// minified ES module: what an extension loads (copied into the demo extension) and what the size
// goal is measured on.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

copyFileSync("src/api.d.ts", "dist/api.d.ts");
await build({ entryPoints: ["dist/index.js"], bundle: true, minify: true, format: "esm", target: "es2022", outfile: "dist/chatfocus.min.js", logLevel: "warning" });
mkdirSync("../extension-demo/lib", { recursive: true });
copyFileSync("dist/chatfocus.min.js", "../extension-demo/lib/chatfocus.js");
const bundle = readFileSync("dist/chatfocus.min.js");
console.log(`dist/chatfocus.min.js: ${bundle.length} bytes minified, ${gzipSync(bundle, { level: 9 }).length} bytes gzip`);
