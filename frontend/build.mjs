// Bundles src/main.ts (with the layout library) into the Python package's static folder, beside the page and
// its style sheet. The output is deterministic: the same sources and lock file give the same bytes.
// CONSOLE_OUT writes elsewhere (the test that the committed build is current compares the two).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.env.CONSOLE_OUT || join(here, "..", "src", "algorun", "console", "static");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "linked",
  outfile: join(out, "console.js"),
  logLevel: "warning",
});
for (const name of ["index.html", "console.css"]) {
  copyFileSync(join(here, "src", name), join(out, name));
}
