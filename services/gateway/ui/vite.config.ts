import { defineConfig } from "vite";

// The gateway serves dist/ (services/gateway/ui.py); `npm run dev` proxies the API to a running
// `modelog up` (MODELOG_HTTP_ADDR, default 127.0.0.1:5000) so the page and the API share an origin.
const api = process.env.MODELOG_HTTP ?? "http://127.0.0.1:5000";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    // Every file under assets/ has a content hash in its name: the gateway caches them for a year.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: { manualChunks: { uplot: ["uplot"] } },
    },
  },
  server: {
    proxy: { "/api": api, "/auth": api },
  },
});
