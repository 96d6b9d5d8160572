// itemq dashboard: the parts that move. Pages work without it.
"use strict";

// The overview: counts, figures and charts, live over server-sent events.
function fmtSeconds(s) {
  if (s < 1) return Math.round(s * 1000) + "ms";
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60);
  return m < 60 ? m + "m" + Math.round(s % 60) + "s" : Math.floor(m / 60) + "h" + (m % 60) + "m";
}

function setText(sel, text) {
  const el = document.querySelector(sel);
  if (el && el.textContent !== String(text)) el.textContent = text;
}

function drawChart(svg, samples) {
  const keys = svg.dataset.series.split(",");
  const W = 300, H = 80, P = 4;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (samples.length < 2) {
    const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
    t.setAttribute("x", P); t.setAttribute("y", H / 2); t.textContent = "collecting…";
    svg.appendChild(t);
    return;
  }
  let maxV = 0;
  for (const s of samples) for (const k of keys) maxV = Math.max(maxV, s[k] || 0);
  if (maxV === 0) maxV = 1;
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t || t0 + 1;
  keys.forEach((k, i) => {
    const pts = samples.map(s => {
      const x = P + (W - 2 * P) * (s.t - t0) / Math.max(1, t1 - t0);
      const y = H - P - (H - 2 * P) * (s[k] || 0) / maxV;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    pl.setAttribute("points", pts);
    if (i > 0) pl.setAttribute("class", "second");
    svg.appendChild(pl);
  });
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", P); label.setAttribute("y", 10);
  label.textContent = "max " + (Math.round(maxV * 100) / 100);
  svg.appendChild(label);
}

function overview() {
  const charts = document.querySelectorAll("svg[data-series]");
  if (!document.querySelector("[data-live=counts]")) return;
  let samples = [];
  fetch("/ui/series", { credentials: "same-origin" }).then(r => r.ok ? r.json() : []).then(s => {
    samples = s; charts.forEach(c => drawChart(c, samples));
  }).catch(() => {});
  const status = document.querySelector("[data-live-status]");
  const es = new EventSource("/ui/events");
  es.onopen = () => { if (status) status.textContent = "Live: updated every second."; };
  es.onerror = () => { if (status) status.textContent = "Live updates paused; reconnecting…"; };
  es.onmessage = ev => {
    const d = JSON.parse(ev.data), sum = d.summary;
    for (const st of ["pending", "running", "succeeded", "failed", "dead", "cancelled"]) {
      setText('[data-count="' + st + '"]', (sum.counts && sum.counts[st]) || 0);
    }
    setText('[data-stat="lambda"]', sum.lambda.toFixed(2));
    setText('[data-stat="s"]', sum.s.toFixed(2));
    setText('[data-stat="parallelism"]', sum.parallelism);
    setText('[data-stat="active"]', sum.active);
    setText('[data-stat="backlog"]', sum.backlog);
    setText('[data-stat="predictedWait"]', fmtSeconds(sum.predictedWait));
    setText('[data-stat="oldestWaiting"]', fmtSeconds(sum.oldestWaiting));
    setText('[data-stat="items"]', sum.items);
    if (d.sample) {
      samples.push(d.sample);
      if (samples.length > 720) samples.shift();
      charts.forEach(c => drawChart(c, samples));
    }
  };
}

// A job's log: the last lines, then what is written while it runs.
async function followLog() {
  const pre = document.querySelector("pre[data-log]");
  if (!pre || pre.textContent.startsWith("No attempt")) return;
  const url = pre.dataset.log + "?tail=500" + (pre.dataset.follow ? "&follow=true" : "");
  try {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) { pre.textContent = "No log: " + (await r.text()); return; }
    pre.textContent = "";
    const reader = r.body.getReader(), dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += dec.decode(value, { stream: true });
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    if (!pre.textContent) pre.textContent = "(the log is empty)";
  } catch (e) {
    pre.textContent += "\n(the log stream ended: " + e + ")";
  }
}

// A job's page while the job has not finished: reloaded when its state or
// its number of attempts changes (pushed with the summary, every second).
function followJob() {
  const el = document.querySelector("[data-follow-job]");
  if (!el) return;
  const es = new EventSource("/ui/events?job=" + encodeURIComponent(el.dataset.followJob));
  es.addEventListener("job", ev => {
    const j = JSON.parse(ev.data);
    if (j.state !== el.dataset.state || String(j.attempts) !== el.dataset.attempts) {
      es.close();
      location.reload();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { overview(); followLog(); followJob(); });
