// A single-page app: rendered in the browser, served as static files with index.html as fallback.
export const ssr = false;
export const prerender = false;
export const trailingSlash = 'never';
