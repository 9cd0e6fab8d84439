/** Vite's `?raw` imports: a file's text (the worker suite reads the documentation it checks this way). */
declare module "*?raw" {
  const text: string;
  export default text;
}
