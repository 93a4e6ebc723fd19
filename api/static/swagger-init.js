// Starts Swagger UI on /docs from the app's own copy of its files (no CDN; the page's CSP
// forbids inline scripts, so the start-up lives in this file).
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
