import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tauri serves the built files itself; relative paths keep them loadable from its protocol.
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  test: { environment: "jsdom", globals: true, include: ["test/**/*.test.ts"] },
});
