// ably.min.js is imported as text (the Text rule in wrangler.toml) and served to the demo page.
declare module "*/ably.min.js" {
  const source: string;
  export default source;
}
