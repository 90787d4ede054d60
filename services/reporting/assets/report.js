// The report page. Everything it shows comes from reporting's API with the tab's API key (sent as
// a header, which a plain link could not do) or the case desk's session cookie. Tenant text goes in
// with textContent only; the funnel and follow-up tables arrive rendered and escaped by the server.
(() => {
  "use strict";
  const STORAGE_KEY = "nps.reporting.apiKey";
  const DAY_MS = 86400000;
  const DEFAULT_DAYS = 90;
  const PAGE_SIZE = 20;
  const COLOURS = { detractor: "#c0392b", passive: "#a16207", promoter: "#1f7a4d", line: "#0b69a3" };
  const CATEGORY_NAMES = { promoter: "Promoter", passive: "Passive", detractor: "Detractor" };
  const GROUP_NAMES = { promoter: "Promoters 9-10", passive: "Passives 7-8", detractor: "Detractors 0-6" };
  // The repurchase panel's window: bought again within this many days of answering.
  const REPURCHASE_DAYS = 90;
  // The filters kept in the address, so that a link shows the same report.
  const QUERY_FIELDS = ["touchpoint", "segment", "since", "until", "bucket", "dimension", "category", "q"];
  const DEFAULTS = { bucket: "week", dimension: "country" };
  const byId = (id) => document.getElementById(id);
  // where: the filters as last submitted; paging, sorting and live refreshes keep to them.
  const state = { sort: "-responses", segmentsCursor: null, verbatimsCursor: null, charts: {}, where: null };

  class SignedOut extends Error {}

  // ---- formatting -------------------------------------------------------------------------------
  function signed(value) {
    if (value === null || value === undefined) return "—";
    const rounded = Math.round(value * 10) / 10;
    return rounded === 0 ? "0.0" : (rounded > 0 ? "+" : "") + rounded.toFixed(1);
  }
  function range(interval) {
    return interval ? signed(interval.low) + " to " + signed(interval.high) : "—";
  }
  function answers(n) {
    return n.toLocaleString("en") + (n === 1 ? " answer" : " answers");
  }
  function isoDate(date) {
    return date.toISOString().slice(0, 10);
  }
  function shownDate(iso) {
    return new Date(iso + "T00:00:00Z").toLocaleDateString("en-GB", {
      day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
    });
  }
  function dayBefore(iso) {
    return isoDate(new Date(Date.parse(iso + "T00:00:00Z") - DAY_MS));
  }
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---- requests ---------------------------------------------------------------------------------
  function setStatus(message, isError) {
    const status = byId("status");
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
  }

  function authHeaders(accept) {
    const headers = { Accept: accept };
    const key = sessionStorage.getItem(STORAGE_KEY);
    if (key) headers.Authorization = "Bearer " + key;
    return headers;
  }

  function withQuery(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") query.set(name, value);
    }
    const search = query.toString();
    return path + (search ? "?" + search : "");
  }

  function describe(problem) {
    if (problem && typeof problem.detail === "string") return problem.detail;
    if (problem && Array.isArray(problem.detail)) {
      return problem.detail.map((item) => (item.field || (item.loc || []).join(".")) + ": "
        + (item.message || item.msg)).join("; ");
    }
    return "unexpected answer";
  }

  // Without a key the request still carries the session cookie of a person signed in at the case
  // desk; only when that is refused too does the page ask for a key.
  async function request(path, params, accept, signal) {
    const response = await fetch(withQuery(path, params), {
      headers: authHeaders(accept), cache: "no-store", credentials: "same-origin", signal,
    });
    if (response.status === 401) throw new SignedOut();
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new Error(response.status === 404 ? "not available on this server yet" : describe(problem));
    }
    return response;
  }

  async function getJSON(path, params) {
    return (await request(path, params, "application/json")).json();
  }

  // ---- filters and the address ----------------------------------------------------------------
  // The APIs' own default, spelled out so that every panel and the exports cover the same days:
  // the 90 days up to today (until is exclusive: tomorrow, UTC).
  function filters() {
    const now = new Date();
    const tomorrow = isoDate(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)));
    const until = byId("until").value || tomorrow;
    const since = byId("since").value
      || isoDate(new Date(Date.parse(until + "T00:00:00Z") - DEFAULT_DAYS * DAY_MS));
    return {
      touchpoint: byId("touchpoint").value.trim(),
      segment: byId("segment").value.trim(),
      since,
      until,
      bucket: byId("bucket").value,
      compare: byId("compare").checked,
    };
  }

  // Also on going back: a filter the address does not name returns to its default.
  function readAddress() {
    const query = new URLSearchParams(location.search);
    for (const name of QUERY_FIELDS) {
      const field = byId(name);
      const value = query.get(name);
      const known = field.tagName !== "SELECT" || [...field.options].some((option) => option.value === value);
      field.value = value !== null && known ? value : DEFAULTS[name] || "";
    }
    byId("compare").checked = query.get("compare") === "previous";
    const sort = query.get("sort");
    state.sort = sort && /^-?(value|responses|nps)$/.test(sort) ? sort : "-responses";
    showSort();
  }

  function writeAddress() {
    const params = {};
    for (const name of QUERY_FIELDS) params[name] = byId(name).value.trim();
    for (const [name, value] of Object.entries(DEFAULTS)) if (params[name] === value) delete params[name];
    if (byId("compare").checked) params.compare = "previous";
    if (state.sort !== "-responses") params.sort = state.sort;
    const address = withQuery(location.pathname, params);
    if (address !== location.pathname + location.search) history.pushState(null, "", address);
  }

  // ---- cards ------------------------------------------------------------------------------------
  function showValue(node, text, tone) {
    node.textContent = text;
    node.className = "value" + (tone ? " " + tone : "");
  }

  function showScore(score) {
    const value = byId("nps-value");
    if (score.too_few) {
      showValue(value, "Too few answers", "few");
      byId("nps-interval").textContent = "A score needs more answers to mean something.";
    } else {
      showValue(value, signed(score.nps), score.nps > 0 ? "good" : score.nps < 0 ? "bad" : "");
      byId("nps-interval").textContent = "95 % interval: " + range(score.interval);
    }
    byId("nps-n").textContent = "n = " + answers(score.responses);
    const shares = (count) => (score.responses ? Math.round((100 * count) / score.responses) + " %" : "—");
    byId("mix-value").textContent = [score.promoters, score.passives, score.detractors]
      .map((n) => n.toLocaleString("en")).join(" · ");
    byId("mix-shares").textContent = [score.promoters, score.passives, score.detractors].map(shares).join(" · ");
  }

  function changeInWords(change) {
    if (change.significant) {
      return change.difference > 0
        ? "Significant rise: the whole interval is above zero."
        : "Significant fall: the whole interval is below zero.";
    }
    return "Not significant: the interval includes zero, so the change may be chance.";
  }

  function showChange(body) {
    const { change, previous } = body;
    // Asked for with compare=previous, which always names the previous period.
    const card = byId("change-card");
    card.hidden = !previous;
    if (card.hidden) return;
    const before = previous
      ? "Previous period " + shownDate(previous.since) + " – " + shownDate(dayBefore(previous.until)) + ": "
        + (previous.score.responses ? signed(previous.score.nps) + ", n = " + answers(previous.score.responses)
          : "no answers") + "."
      : "";
    if (!change || change.too_few || change.difference === null) {
      showValue(byId("change-value"), "Too few answers", "few");
      byId("change-interval").textContent = before;
      byId("change-words").textContent = "Both periods need enough answers to compare them.";
      return;
    }
    const tone = change.significant ? (change.difference > 0 ? "good" : "bad") : "";
    showValue(byId("change-value"), signed(change.difference) + " points", tone);
    byId("change-interval").textContent = "95 % interval: " + range(change.interval);
    byId("change-words").textContent = changeInWords(change) + " " + before;
  }

  async function loadScores(where) {
    const body = await getJSON("/v1/reports/scores", {
      touchpoint: where.touchpoint, segment: where.segment, since: where.since, until: where.until,
      compare: where.compare ? "previous" : "none",
    });
    showScore(body.score);
    showChange(body);
    drawDistribution(body.distribution);
    byId("range").textContent = (where.touchpoint ? "Touchpoint " + where.touchpoint : "All touchpoints")
      + (where.segment ? ", segment " + where.segment : ", everybody") + ", answers from "
      + shownDate(body.since) + " to " + shownDate(dayBefore(body.until)) + " (UTC).";
  }

  // ---- charts -----------------------------------------------------------------------------------
  function plotSize(container) {
    const width = Math.max(200, Math.floor(container.clientWidth));
    return { width, height: width < 500 ? 220 : 260 };
  }

  function replaceChart(name, container, options, data) {
    if (state.charts[name]) state.charts[name].destroy();
    container.replaceChildren();
    state.charts[name] = new uPlot({ ...options, ...plotSize(container) }, data, container);
  }

  function fillTable(id, rows) {
    byId(id).tBodies[0].replaceChildren(...rows.map((cells) => {
      const row = element("tr");
      cells.forEach((text, index) => {
        const cell = element(index === 0 ? "th" : "td", "", text);
        if (index === 0) cell.scope = "row";
        row.append(cell);
      });
      return row;
    }));
  }

  function scoreRange(u, low, high) {
    if (low === null || high === null) return [-100, 100];
    return [Math.max(-100, Math.floor(low / 10) * 10 - 10), Math.min(100, Math.ceil(high / 10) * 10 + 10)];
  }

  function axisDate(seconds, bucket) {
    const format = bucket === "month" ? { month: "short", year: "numeric" } : { day: "numeric", month: "short" };
    return new Date(seconds * 1000).toLocaleDateString("en-GB", { ...format, timeZone: "UTC" });
  }

  const shown = (u, value) => signed(value);

  function drawTrend(body) {
    const points = body.points;
    const xs = points.map((point) => Date.parse(point.start + "T00:00:00Z") / 1000);
    const nps = points.map((point) => point.score.nps);
    const high = points.map((point) => (point.score.interval ? point.score.interval.high : null));
    const low = points.map((point) => (point.score.interval ? point.score.interval.low : null));
    replaceChart("trend", byId("trend-chart"), {
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      // The legend reads out the point under the pointer.
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: scoreRange } },
      series: [
        { label: "From", value: (u, ts) => (ts === null ? "—" : axisDate(ts, "day")) },
        { label: "NPS", stroke: COLOURS.line, width: 2, points: { show: true, size: 6 }, value: shown },
        { label: "high", stroke: "rgba(11, 105, 163, 0.35)", width: 1, points: { show: false }, value: shown },
        { label: "low", stroke: "rgba(11, 105, 163, 0.35)", width: 1, points: { show: false }, value: shown },
      ],
      bands: [{ series: [2, 3], fill: "rgba(11, 105, 163, 0.15)" }],
      axes: [
        { space: 70, values: (u, splits) => splits.map((ts) => axisDate(ts, body.bucket)) },
        { values: (u, splits) => splits.map((v) => signed(v).replace(".0", "")) },
      ],
    }, [xs, nps, high, low]);
    const answered = points.filter((point) => point.score.responses > 0);
    const latest = answered[answered.length - 1];
    byId("trend-chart").setAttribute("aria-label", "NPS by " + body.bucket + ", " + points.length + " "
      + body.bucket + "s, " + answered.length + " with answers"
      + (latest ? "; the latest from " + shownDate(latest.start) + ": " + signed(latest.score.nps) + ", "
        + answers(latest.score.responses) : "") + ". The table that follows lists each.");
    fillTable("trend-table", points.map((point) => [
      shownDate(point.start), point.score.responses ? signed(point.score.nps) : "no answers",
      range(point.score.interval), String(point.score.responses),
    ]));
  }

  function drawDistribution(distribution) {
    const scores = distribution.map((_, score) => score);
    const only = (from, to) => distribution.map((count, score) => (score >= from && score <= to ? count : null));
    const bars = uPlot.paths.bars({ size: [0.75, 48] });
    const series = (label, colour) => ({ label, fill: colour, stroke: colour, paths: bars, points: { show: false } });
    replaceChart("distribution", byId("distribution-chart"), {
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: [-0.5, 10.5] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      series: [{}, series("Detractors", COLOURS.detractor), series("Passives", COLOURS.passive),
        series("Promoters", COLOURS.promoter)],
      axes: [{ splits: () => scores, values: (u, splits) => splits.map(String), grid: { show: false } }, {}],
    }, [scores, only(0, 6), only(7, 8), only(9, 10)]);
    byId("distribution-chart").setAttribute("aria-label", "Answers by score: "
      + distribution.map((count, score) => score + ": " + count).join(", ") + ".");
    fillTable("distribution-table", distribution.map((count, score) => [String(score), String(count)]));
  }

  async function loadTrend(where) {
    drawTrend(await getJSON("/v1/reports/trend", {
      touchpoint: where.touchpoint, segment: where.segment, since: where.since, until: where.until,
      bucket: where.bucket,
    }));
  }

  const resizing = new ResizeObserver(() => {
    for (const [name, chart] of Object.entries(state.charts)) {
      chart.setSize(plotSize(byId(name + "-chart")));
    }
  });

  // ---- the segments table -----------------------------------------------------------------------
  function sparkline(values) {
    const NS = "http://www.w3.org/2000/svg";
    const width = 96, height = 24, step = values.length > 1 ? width / (values.length - 1) : 0;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("class", "spark");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Weekly NPS: " + values.map((v) => (v === null ? "none" : signed(v))).join(", "));
    const zero = document.createElementNS(NS, "line");
    for (const [name, value] of [["x1", 0], ["x2", width], ["y1", height / 2], ["y2", height / 2]]) {
      zero.setAttribute(name, String(value));
    }
    svg.append(zero);
    let run = [];
    const flush = () => {
      if (run.length) {
        const line = document.createElementNS(NS, "polyline");
        line.setAttribute("points", (run.length === 1 ? [run[0], run[0]] : run).join(" "));
        svg.append(line);
      }
      run = [];
    };
    let last = null;
    values.forEach((value, index) => {
      if (value === null) return flush();
      last = [index * step, (height / 2 - 2) * (1 - value / 100) + 2];
      run.push(last[0].toFixed(1) + "," + last[1].toFixed(1));
    });
    flush();
    if (last) {
      const dot = document.createElementNS(NS, "circle");
      dot.setAttribute("cx", String(Math.min(width - 2.5, Math.max(2.5, last[0]))));
      dot.setAttribute("cy", String(last[1]));
      dot.setAttribute("r", "2.5");
      svg.append(dot);
    }
    return svg;
  }

  function segmentRow(row) {
    const tr = element("tr");
    const name = element("th", "", row.touchpoint);
    name.scope = "row";
    const spark = element("td");
    spark.append(sparkline(row.sparkline || []));
    tr.append(name, element("td", "segment-value", row.value), element("td", "", row.score.responses.toLocaleString("en")),
      element("td", "", row.score.too_few ? "too few" : signed(row.score.nps)),
      element("td", "", row.score.too_few ? "—" : range(row.score.interval)), spark);
    return tr;
  }

  async function loadSegments(where, more) {
    const body = await getJSON("/v1/reports/segments", {
      dimension: byId("dimension").value, touchpoint: where.touchpoint, since: where.since, until: where.until,
      sort: state.sort, limit: PAGE_SIZE, cursor: more ? state.segmentsCursor : null,
    });
    const tbody = byId("segments").tBodies[0];
    const rows = body.rows.map(segmentRow);
    if (!more && !rows.length) {
      const empty = element("td", "", "No answers in these segments yet.");
      empty.colSpan = 6;
      rows.push(element("tr"));
      rows[0].append(empty);
    }
    if (more) tbody.append(...rows);
    else tbody.replaceChildren(...rows);
    state.segmentsCursor = body.next_cursor;
    byId("segments-more").hidden = !body.next_cursor;
  }

  function showSort() {
    const key = state.sort.replace(/^-/, "");
    for (const th of byId("segments").querySelectorAll("th[data-sort]")) {
      const direction = state.sort.startsWith("-") ? "descending" : "ascending";
      th.setAttribute("aria-sort", th.dataset.sort === key ? direction : "none");
    }
  }

  function sortBy(key) {
    const current = state.sort.replace(/^-/, "");
    if (current === key) state.sort = state.sort.startsWith("-") ? key : "-" + key;
    else state.sort = key === "value" ? key : "-" + key;
    showSort();
    writeAddress();
    guarded(byId("segments"), () => loadSegments(state.where, false)).catch(signedOut);
  }

  // ---- revenue at risk --------------------------------------------------------------------------
  // The API gives each amount in major units with its currency's own decimals ("575.00" DKK, "1200"
  // JPY): formatted with exactly those, from the string (no float on the way), never converted.
  function money(amount, currency) {
    const decimals = (amount.split(".")[1] || "").length;
    try {
      return new Intl.NumberFormat("en-GB", {
        style: "currency", currency, currencyDisplay: "code",
        minimumFractionDigits: decimals, maximumFractionDigits: decimals,
      }).format(amount);
    } catch {
      return currency + " " + amount;
    }
  }
  function chance(probability) {
    return Number((probability * 100).toFixed(2)).toLocaleString("en") + " %";
  }
  function counted(n, one, many) {
    return n.toLocaleString("en") + " " + (n === 1 ? one : many);
  }

  function showProbabilities(probability, settings) {
    byId("revenue-probability-values").textContent = "Churn probabilities used: " + chance(probability.detractor)
      + " of detractors and " + chance(probability.passive) + " of passives are expected to leave.";
    byId("revenue-probability-source").replaceChildren(settings.updated_at
      ? "Your organisation's own setting, from "
        + new Date(settings.updated_at).toLocaleDateString("en-GB", { dateStyle: "medium" }) + ". "
      : "Your organisation has not set them yet: these are the defaults, and the " + chance(probability.detractor)
        + " for detractors is a placeholder, not a measured churn rate; passives count only once a "
        + "probability is set for them. ",
    "Change them with PUT /v1/reports/settings (the tenant's API key, or signed in as a CX manager or admin; "
      + "see the ", apiDocsLink(), ").");
  }
  function apiDocsLink() {
    const link = element("a", "", "API docs");
    link.href = "/docs";
    return link;
  }

  function totalCard(risk, probability) {
    const card = element("div", "card money-card");
    card.append(element("div", "label", risk.currency + " at risk"),
      element("div", "value", money(risk.revenue_at_risk, risk.currency)),
      element("div", "detail", "Detractors' spend " + money(risk.detractor_spend, risk.currency) + " × "
        + chance(probability.detractor)),
      element("div", "detail", "Passives' spend " + money(risk.passive_spend, risk.currency) + " × "
        + chance(probability.passive)));
    return card;
  }

  // One group (a touchpoint, a segment value) is one row group: a row per currency, the group's
  // name and answers once (the risk comes first, so that a phone shows it without scrolling).
  function riskGroup(name, group) {
    const body = element("tbody");
    const currencies = group.currencies.length ? group.currencies : [null];
    currencies.forEach((risk, index) => {
      const tr = element("tr");
      const spanned = index === 0 ? [element("th", "", name), element("td", "count", group.answers.detractors
        .toLocaleString("en")), element("td", "count", group.answers.passives.toLocaleString("en"))] : [];
      for (const cell of spanned) cell.rowSpan = currencies.length;
      if (spanned.length) {
        spanned[0].scope = "rowgroup";
        tr.append(spanned[0]);
      }
      if (risk) {
        tr.append(element("td", "at-risk", money(risk.revenue_at_risk, risk.currency)),
          element("td", "", money(risk.detractor_spend, risk.currency)),
          element("td", "", money(risk.passive_spend, risk.currency)));
      } else {
        const none = element("td", "", "no spend recorded");
        none.colSpan = 3;
        tr.append(none);
      }
      tr.append(...spanned.slice(1));
      body.append(tr);
    });
    return body;
  }

  function fillRisks(table, groups, empty) {
    const bodies = groups.map((group) => riskGroup(group.name, group));
    if (!bodies.length) {
      const row = element("tr");
      const cell = element("td", "empty", empty);
      cell.colSpan = 6;
      row.append(cell);
      bodies.push(element("tbody"));
      bodies[0].append(row);
    }
    for (const body of table.querySelectorAll("tbody")) body.remove();
    table.append(...bodies);
  }

  // The segment filter narrows the risk to one segment; without it, the risk is split by the
  // segments table's dimension (the API takes one or the other).
  async function loadRevenue(where) {
    const dimension = byId("dimension").value.trim();
    const [body, settings] = await Promise.all([
      getJSON("/v1/reports/revenue", {
        touchpoint: where.touchpoint, segment: where.segment, since: where.since, until: where.until,
        dimension: where.segment ? null : dimension,
      }),
      getJSON("/v1/reports/settings", {}),
    ]);
    const probability = body.churn_probability;
    showProbabilities(probability, settings);
    const totals = body.currencies.map((risk) => totalCard(risk, probability));
    if (!totals.length) totals.push(element("p", "note", "No spend recorded for these answers yet."));
    byId("revenue-totals").replaceChildren(...totals);
    byId("revenue-counted").textContent = "From " + counted(body.answers.detractors, "detractor", "detractors")
      + " and " + counted(body.answers.passives, "passive", "passives") + " who answered; an answer without a "
      + "12-month spend counts here but adds no spend.";
    fillRisks(byId("revenue-touchpoints"), body.touchpoints.map((row) => ({ ...row, name: row.touchpoint })),
      "No spend recorded at any touchpoint yet.");
    const segments = where.segment
      ? (body.currencies.length ? [{ name: where.segment, currencies: body.currencies, answers: body.answers }] : [])
      : (body.segments || []).map((row) => ({ ...row, name: row.value }));
    byId("revenue-segments-caption").textContent = where.segment
      ? "Segment " + where.segment + " (the segment filter)"
      : dimension ? "By " + dimension + " (as segments by, above)" : "By segment: choose what segments by, above";
    fillRisks(byId("revenue-segments"), segments, "No spend recorded in these segments yet.");
  }

  // ---- recommended and repurchase -------------------------------------------------------------
  function percent(share) {
    return share === null || share === undefined ? "—" : (share * 100).toFixed(1) + " %";
  }
  function shareRange(interval) {
    return interval ? (interval.low * 100).toFixed(1) + " to " + (interval.high * 100).toFixed(1) + " %" : "—";
  }

  // One row: its name as the row's header, then count, of them, share and interval.
  function rateRow(name, total, yes, share, interval) {
    const tr = element("tr");
    const head = element("th", "", name);
    head.scope = "row";
    tr.append(head, element("td", "", total.toLocaleString("en")), element("td", "", yes.toLocaleString("en")),
      element("td", "", percent(share)), element("td", "", shareRange(interval)));
    return tr;
  }

  async function loadRecommended(where) {
    const body = await getJSON("/v1/reports/recommended",
      { touchpoint: where.touchpoint, since: where.since, until: where.until });
    const table = byId("recommended");
    table.tBodies[0].replaceChildren(...body.by_score.map(
      (row) => rateRow(String(row.score), row.answered, row.recommended, row.share, row.interval)));
    table.tFoot.replaceChildren(...body.by_group.map(
      (row) => rateRow(GROUP_NAMES[row.group] || row.group, row.answered, row.recommended, row.share, row.interval)));
  }

  async function loadRepurchase(where) {
    const body = await getJSON("/v1/reports/repurchase",
      { days: REPURCHASE_DAYS, touchpoint: where.touchpoint, since: where.since, until: where.until });
    byId("repurchase").tBodies[0].replaceChildren(...body.groups.map(
      (row) => rateRow(GROUP_NAMES[row.group] || row.group, row.answers, row.repurchased, row.rate, row.interval)));
  }

  // ---- verbatims --------------------------------------------------------------------------------
  function caseLink(found) {
    let url;
    try {
      url = new URL(found.url, location.href);
    } catch {
      return null;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return null;
    const link = element("a", "", "Case (" + found.status + ")");
    link.href = url.href;
    return link;
  }

  function followUps(verbatim) {
    const parts = [];
    if (verbatim.recommended !== null) parts.push("Recommended us: " + (verbatim.recommended ? "yes" : "no"));
    if (verbatim.csat !== null) parts.push("CSAT " + verbatim.csat + " of 5");
    if (verbatim.effort !== null) parts.push("Effort " + verbatim.effort + " of 7");
    for (const [dimension, value] of Object.entries(verbatim.segments || {})) parts.push(dimension + ": " + value);
    return parts.join(" · ");
  }

  function verbatimItem(verbatim) {
    const item = element("li");
    const meta = element("div", "meta");
    meta.append(element("span", "badge " + verbatim.category, String(verbatim.score)),
      element("span", "", CATEGORY_NAMES[verbatim.category] || verbatim.category),
      element("span", "", verbatim.touchpoint));
    const when = element("time", "", new Date(verbatim.responded_at).toLocaleString("en-GB", {
      dateStyle: "medium", timeStyle: "short",
    }));
    when.dateTime = verbatim.responded_at;
    meta.append(when);
    const link = verbatim.case ? caseLink(verbatim.case) : null;
    if (link) meta.append(link);
    item.append(meta, element("blockquote", verbatim.category, verbatim.comment));
    const more = followUps(verbatim);
    if (more) item.append(element("p", "answers", more));
    return item;
  }

  async function loadVerbatims(where, more) {
    const body = await getJSON("/v1/reports/verbatims", {
      touchpoint: where.touchpoint, segment: where.segment, since: where.since, until: where.until,
      category: byId("category").value, q: byId("q").value.trim(), limit: PAGE_SIZE,
      cursor: more ? state.verbatimsCursor : null,
    });
    const items = body.verbatims.map(verbatimItem);
    if (!more && !items.length) items.push(element("li", "note", "No comments match."));
    if (more) byId("verbatims").append(...items);
    else byId("verbatims").replaceChildren(...items);
    state.verbatimsCursor = body.next_cursor;
    byId("verbatims-more").hidden = !body.next_cursor;
  }

  // ---- exports ----------------------------------------------------------------------------------
  function setExportLinks(where) {
    const params = { touchpoint: where.touchpoint, since: where.since, until: where.until };
    byId("export-responses").href = withQuery("/v1/reports/export/responses.csv", params);
    byId("export-cases").href = withQuery("/v1/reports/export/cases.csv", params);
  }

  // With the desk's cookie the plain link works; a key has to go in a header, so the file is
  // fetched and handed to the browser as a Blob.
  async function download(event) {
    if (!sessionStorage.getItem(STORAGE_KEY)) return;
    event.preventDefault();
    const link = event.currentTarget;
    setStatus("Preparing " + link.getAttribute("download") + "…");
    try {
      const response = await request(link.getAttribute("href"), {}, "text/csv");
      const url = URL.createObjectURL(await response.blob());
      const save = element("a");
      save.href = url;
      save.download = link.getAttribute("download");
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setStatus("Downloaded " + save.download + ".");
    } catch (error) {
      if (error instanceof SignedOut) return signedOut();
      setStatus("The export failed: " + error.message, true);
    }
  }

  // ---- the server-rendered funnel and follow-up -------------------------------------------------
  // The server renders (and escapes) these tables; the script only carries the key.
  async function loadSummary(where) {
    const response = await request("/v1/reports/summary.html",
      { touchpoint: where.touchpoint, since: where.since, until: where.until }, "text/html");
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const report = page.getElementById("report-body");
    byId("report-body").replaceChildren(...(report ? report.childNodes : []));
    // A table wider than a phone scrolls in its box: the box takes focus so a keyboard can scroll it.
    for (const box of byId("report-body").querySelectorAll(".scroll")) {
      const caption = box.querySelector("caption");
      box.tabIndex = 0;
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", caption ? caption.textContent : "Table");
    }
  }

  // ---- live updates -----------------------------------------------------------------------------
  const live = { controller: null, attempt: 0, timer: null, refresh: null };

  function showLive(text, tone) {
    const badge = byId("live");
    badge.hidden = false;
    badge.textContent = text;
    badge.className = "live" + (tone ? " " + tone : "");
  }

  function stopLive() {
    clearTimeout(live.timer);
    if (live.controller) live.controller.abort();
    live.controller = null;
  }

  function startLive() {
    stopLive();
    const controller = new AbortController();
    live.controller = controller;
    showLive("Connecting…");
    listen(controller).catch(() => null).then(() => {
      if (live.controller !== controller) return;
      const seconds = Math.min(30, 2 ** live.attempt);
      live.attempt += 1;
      showLive("Disconnected, retrying in " + seconds + " s", "off");
      live.timer = setTimeout(startLive, seconds * 1000);
    });
  }

  async function listen(controller) {
    const where = state.where;
    const response = await request("/v1/nps/stream",
      { touchpoint: where.touchpoint, segment: where.segment }, "text/event-stream", controller.signal);
    showLive("Live", "on");
    if (live.attempt > 0) refreshSoon();
    live.attempt = 0;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let watchdog = setTimeout(() => controller.abort(), 45000);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), 45000);
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^event: ?nps$/m.test(block)) refreshSoon();
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  // A burst of changed cells (a batch of answers) becomes one refresh of the cards and the trend.
  function refreshSoon() {
    clearTimeout(live.refresh);
    live.refresh = setTimeout(async () => {
      const where = state.where;
      await Promise.all([guarded(byId("score-cards"), () => loadScores(where)),
        guarded(byId("trend-chart"), () => loadTrend(where))]);
      showLive("Live · updated " + new Date().toLocaleTimeString("en-GB"), "on");
    }, 300);
  }

  // ---- loading ----------------------------------------------------------------------------------
  function signedIn(yes) {
    byId("sign-in").hidden = yes;
    byId("report").hidden = !yes;
    byId("forget").hidden = !yes || !sessionStorage.getItem(STORAGE_KEY);
    if (!yes) {
      stopLive();
      byId("live").hidden = true;
    }
  }

  function signedOut() {
    const hadKey = Boolean(sessionStorage.getItem(STORAGE_KEY));
    sessionStorage.removeItem(STORAGE_KEY);
    signedIn(false);
    setStatus(hadKey ? "That API key was not accepted. Enter a valid one." : "", hadKey);
  }

  // One panel that cannot load says so in place; the rest of the report still shows.
  async function guarded(panel, load) {
    const note = panel.parentElement.querySelector(":scope > .problem-note");
    if (note) note.remove();
    try {
      await load();
    } catch (error) {
      if (error instanceof SignedOut) throw error;
      const problem = element("p", "problem-note status error", "Could not load this part: " + error.message);
      panel.after(problem);
    }
  }

  async function load() {
    setStatus("Loading…");
    const where = filters();
    state.where = where;
    try {
      await loadSummary(where);
    } catch (error) {
      if (error instanceof SignedOut) return signedOut();
      signedIn(true);
      setStatus("The report could not be loaded: " + error.message, true);
      return;
    }
    signedIn(true);
    setExportLinks(where);
    try {
      await Promise.all([
        guarded(byId("score-cards"), () => loadScores(where)),
        guarded(byId("trend-chart"), () => loadTrend(where)),
        guarded(byId("segments"), () => loadSegments(where, false)),
        guarded(byId("revenue-totals"), () => loadRevenue(where)),
        guarded(byId("verbatims"), () => loadVerbatims(where, false)),
        guarded(byId("recommended"), () => loadRecommended(where)),
        guarded(byId("repurchase"), () => loadRepurchase(where)),
      ]);
    } catch (error) {
      if (error instanceof SignedOut) return signedOut();
      throw error;
    }
    setStatus("Updated " + new Date().toLocaleTimeString("en-GB") + ".");
    startLive();
  }

  function start() {
    byId("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = byId("api-key");
      const key = input.value.trim();
      input.value = "";
      if (!key) return;
      sessionStorage.setItem(STORAGE_KEY, key);
      setStatus("");
      load();
    });
    byId("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      writeAddress();
      load();
    });
    byId("verbatim-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      writeAddress();
      guarded(byId("verbatims"), () => loadVerbatims(state.where, false)).catch(signedOut);
    });
    byId("dimension-form").addEventListener("submit", (event) => {
      event.preventDefault();
      writeAddress();
      guarded(byId("segments"), () => loadSegments(state.where, false)).catch(signedOut);
      guarded(byId("revenue-totals"), () => loadRevenue(state.where)).catch(signedOut);
    });
    for (const th of byId("segments").querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.sort));
    }
    byId("segments-more").addEventListener("click",
      () => guarded(byId("segments"), () => loadSegments(state.where, true)).catch(signedOut));
    byId("verbatims-more").addEventListener("click",
      () => guarded(byId("verbatims"), () => loadVerbatims(state.where, true)).catch(signedOut));
    byId("export-responses").addEventListener("click", download);
    byId("export-cases").addEventListener("click", download);
    byId("forget").addEventListener("click", () => {
      sessionStorage.removeItem(STORAGE_KEY);
      byId("report-body").replaceChildren();
      signedIn(false);
      setStatus("The API key was removed from this tab.");
    });
    window.addEventListener("popstate", () => {
      readAddress();
      load();
    });
    resizing.observe(byId("trend-chart"));
    resizing.observe(byId("distribution-chart"));
    readAddress();
    load();
  }

  start();
})();
