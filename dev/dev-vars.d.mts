/** Types of dev-vars.mjs, for the tests that read the development settings. */
export function readVars(text: string): Record<string, string>;
export function updateDevVars(file: string, example: string): { created: boolean; added: string[] };
