/**
 * docs/bench.svg: the bench's medians as two bar charts side by side, requests/s and CPU per
 * request, one bar per target. Plain SVG text, so it needs no dependency and diffs readably.
 */
const WIDTH = 760;
const PANEL = 340; // each chart's width
const BAR = 34;
const GAP = 16;
const TOP = 56;
const LABEL = 120; // room for the target names
const COLORS = ["#2563eb", "#64748b", "#d97706", "#059669"];

const escape = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** One horizontal bar chart of `rows` ({ name, value, text }) at x offset `left`. */
function panel(left, title, rows) {
  const max = Math.max(...rows.map((r) => r.value));
  const span = PANEL - LABEL - 70; // bar length at the maximum; 70 for the value's text
  const bars = rows.map((row, i) => {
    const y = TOP + i * (BAR + GAP);
    const length = Math.max(1, (row.value / max) * span);
    return [
      `<text x="${left + LABEL - 8}" y="${y + BAR / 2 + 5}" text-anchor="end">${escape(row.name)}</text>`,
      `<rect x="${left + LABEL}" y="${y}" width="${length.toFixed(1)}" height="${BAR}" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${(left + LABEL + length + 6).toFixed(1)}" y="${y + BAR / 2 + 5}">${escape(row.text)}</text>`,
    ].join("");
  });
  return `<text x="${left}" y="${TOP - 18}" font-weight="bold">${escape(title)}</text>${bars.join("\n")}`;
}

/** The SVG for `targets` ({ name, rps, cpuUs }), with a caption line under the charts. */
export function drawChart(targets, caption) {
  const height = TOP + targets.length * (BAR + GAP) + 40;
  const rps = targets.map((t) => ({ name: t.name, value: t.rps, text: Math.round(t.rps).toLocaleString("en") }));
  const cpu = targets.map((t) => ({ name: t.name, value: t.cpuUs, text: `${Math.round(t.cpuUs)} µs` }));
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#fff"/>
${panel(10, "requests/s (higher is better)", rps)}
${panel(10 + PANEL + 40, "CPU per request (lower is better)", cpu)}
<text x="10" y="${height - 12}" font-size="11" fill="#475569">${escape(caption)}</text>
</svg>
`;
}
