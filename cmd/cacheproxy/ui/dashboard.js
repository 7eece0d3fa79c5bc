// The cacheproxy dashboard: polls the admin API every 2 s and draws what it
// answers. Its charts are drawn from the server's own samples of its
// counters (GET /history), so a tab that opens shows the last minutes at
// once. The X-Cache results it lists and the Cache-Status details it
// explains come from GET /vocabulary (the server's tables, with what each
// means), never spelled here. Everything shown comes from the API and is
// set as text (never as HTML). The admin token is read from the URL fragment (#token=...) or the
// token field and kept in sessionStorage; it is sent with every request as
// "Authorization: Bearer <token>", and only to this origin.
'use strict';

(function () {
  const POLL_MS = 2000;
  const HISTORY = 150; // intervals kept: 5 minutes of the server's 2 s samples
  const MIN_SLOTS = 12; // a chart is at least this many intervals wide
  const TOKEN_KEY = 'cacheproxy-admin-token';
  // The vocabulary, as GET /vocabulary describes it: the outcomes
  // ({label, meaning, class, tier}, in the server's order) and the reasons
  // ({label, meaning, hit, advice}) by label. Empty until it is read.
  let OUTCOMES = [];
  let KINDS = [];
  let REASONS = null;
  // The tiers chart stacks these, bottom first: which outcomes each draws,
  // by class and tier; mark colours an outcome's row in the results table.
  const SERIES = [
    { cls: 's-l1', mark: 'm-l1', has: (o) => o.class === 'hit' && o.tier === 'l1' },
    { cls: 's-l2', mark: 'm-l2', has: (o) => o.class === 'hit' && o.tier === 'l2' },
    { cls: 's-stale', mark: 'm-stale', has: (o) => o.class === 'hit' && o.tier !== 'l1' && o.tier !== 'l2' },
    { cls: 's-miss', mark: 'm-miss', has: (o) => o.class === 'miss' },
    { cls: 's-pass', mark: 'm-pass', has: (o) => o.class === 'pass' },
    { cls: 's-error', mark: 'm-error', has: (o) => o.class === 'error' },
  ];
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let samples = []; // {t, req, origin}: the server's samples of its counters
  let inspectURL = '';
  let polls = 0;

  // --- the token ---

  function takeTokenFromFragment() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return;
    try {
      token = decodeURIComponent(m[1]);
    } catch (e) {
      token = m[1];
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    // Out of the address bar and the tab's history.
    window.history.replaceState(null, '', location.pathname + location.search);
  }

  function showTokenState(rejected) {
    $('token-form').hidden = !rejected;
    $('token-forget').hidden = token === '';
    $('token-state').textContent = rejected ? (token ? 'token rejected' : 'this admin API needs a token') : (token ? 'token set' : '');
  }

  // --- the admin API ---

  class Unauthorized extends Error {}

  async function api(path) {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const resp = await fetch('../' + path, { headers, cache: 'no-store', credentials: 'omit' });
    if (resp.status === 401) throw new Unauthorized();
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      // not JSON: reported below by status
    }
    return { status: resp.status, body };
  }

  // --- formatting ---

  const total = (m) => Object.values(m || {}).reduce((n, v) => n + (v || 0), 0);
  const ofClass = (m, ...classes) => OUTCOMES.filter((o) => classes.includes(o.class)).reduce((n, o) => n + ((m && m[o.label]) || 0), 0);
  const hitsAndMisses = (m) => ofClass(m, 'hit', 'miss');
  const pct = (x) => (x * 100).toFixed(1) + '%';
  // share is a reason's share as the CLI shows it (proxy.ReportRow.MainReasonText).
  const share = (x) => (x * 100 < 1 ? '<1%' : Math.round(x * 100) + '%');
  const count = (n) => Number(n || 0).toLocaleString('en-US');
  const rate = (x) => (x < 10 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
  const clock = (t) => new Date(t).toLocaleTimeString('en-GB', { hour12: false });

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    n = Number(n || 0);
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }

  function seconds(s) {
    const a = Math.abs(s);
    if (a < 120) return a.toFixed(a < 10 ? 1 : 0) + ' s';
    if (a < 7200) return (a / 60).toFixed(1) + ' min';
    return (a / 3600).toFixed(1) + ' h';
  }

  // printable shows control characters (a Vary key's separators) as \xNN.
  const printable = (s) => String(s).replace(/[\x00-\x1f\x7f]/g, (c) => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // withCode appends s to parent, the parts between backquotes as <code>.
  function withCode(parent, s) {
    (s || '').split('`').forEach((part, i) => parent.append(i % 2 ? el('code', part) : part));
    return parent;
  }

  function row(tbody, cells, attrs) {
    const tr = document.createElement('tr');
    for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
    for (const [k, v] of Object.entries(attrs || {})) tr.dataset[k] = v;
    tbody.append(tr);
    return tr;
  }

  const num = (v) => el('td', v, 'n');

  function setText(id, text, cls) {
    const e = $(id);
    e.textContent = text;
    if (cls !== undefined) e.className = cls;
  }

  function showError(msg) {
    $('error').hidden = !msg;
    $('error').textContent = msg;
  }

  // --- history ---

  // vocabularyFrom takes the outcomes and reasons from a /vocabulary answer.
  function vocabularyFrom(v) {
    OUTCOMES = Array.isArray(v.outcomes) ? v.outcomes : [];
    KINDS = OUTCOMES.map((o) => o.label);
    REASONS = new Map((Array.isArray(v.reasons) ? v.reasons : []).map((r) => [r.label, r]));
  }

  // record adds the server's new samples (GET /history?since=).
  function record(list) {
    for (const h of list) {
      const s = { t: h.t, req: Object.assign({}, h.requests), origin: h.origin_requests || 0 };
      const prev = samples[samples.length - 1];
      if (prev && s.t <= prev.t) continue; // already held
      if (prev && (total(s.req) < total(prev.req) || s.origin < prev.origin)) samples = []; // restarted
      samples.push(s);
    }
    while (samples.length > HISTORY + 1) samples.shift();
  }

  // intervals returns the deltas between consecutive samples.
  function intervals() {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i];
      const d = { t: b.t, dt: (b.t - a.t) / 1000, by: {}, total: 0, origin: b.origin - a.origin };
      for (const k of KINDS) {
        d.by[k] = ((b.req[k] || 0) - (a.req[k] || 0));
        d.total += d.by[k];
      }
      out.push(d);
    }
    return out;
  }

  // --- charts ---

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // frame clears svg and returns its plot area, drawing the y axis labels
  // and the time labels.
  function frame(svg, ivs, yLabels) {
    const W = Math.max(svg.clientWidth, 200), H = Math.max(svg.clientHeight, 100);
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.replaceChildren();
    const p = { x: 44, y: 8, w: W - 52, h: H - 26 };
    const slots = Math.max(ivs.length, MIN_SLOTS);
    p.slot = p.w / slots;
    p.x0 = p.x + (slots - ivs.length) * p.slot; // the first interval's left edge
    for (const [v, label] of yLabels) {
      const y = p.y + p.h * (1 - v);
      svg.append(svgEl('line', { x1: p.x, x2: p.x + p.w, y1: y, y2: y, class: 'grid' }));
      svg.append(svgEl('text', { x: p.x - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }, label));
    }
    const span = ivs.reduce((s, d) => s + d.dt, 0) * slots / Math.max(ivs.length, 1);
    svg.append(svgEl('text', { x: p.x, y: H - 6, class: 'axis' }, ivs.length ? '−' + seconds(span) : 'waiting for data'));
    svg.append(svgEl('text', { x: p.x + p.w, y: H - 6, class: 'axis', 'text-anchor': 'end' }, 'now'));
    svg.dataset.samples = ivs.length;
    return p;
  }

  function drawTiers(ivs) {
    const svg = $('chart-tiers');
    const p = frame(svg, ivs, [[0, '0%'], [0.5, '50%'], [1, '100%']]);
    ivs.forEach((d, i) => {
      const g = svgEl('g', { class: 'bar' });
      g.dataset.total = d.total;
      for (const k of KINDS) g.dataset[k.toLowerCase().replace('-', '')] = d.by[k];
      const x = p.x0 + i * p.slot + 0.5, w = Math.max(p.slot - 1, 1);
      let y = p.y + p.h;
      if (d.total > 0) {
        for (const s of SERIES) {
          const n = OUTCOMES.filter(s.has).reduce((a, o) => a + d.by[o.label], 0);
          if (n <= 0) continue;
          const h = p.h * n / d.total;
          y -= h;
          g.append(svgEl('rect', { x, y, width: w, height: h, class: s.cls }));
        }
        const hm = hitsAndMisses(d.by);
        const title = `${clock(d.t)}: ${d.total} requests` + (hm ? `, hit ratio ${pct(ofClass(d.by, 'hit') / hm)}` : '');
        g.append(svgEl('title', {}, title));
      }
      svg.append(g);
    });
  }

  function niceMax(v) {
    if (v <= 1) return 1;
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 6, 8, 10]) if (v <= m * e) return m * e; // halves stay round
    return 10 * e;
  }

  function drawRates(ivs) {
    const svg = $('chart-rates');
    const rps = ivs.map((d) => (d.dt > 0 ? d.total / d.dt : 0));
    const ops = ivs.map((d) => (d.dt > 0 ? d.origin / d.dt : 0));
    const top = niceMax(Math.max(0, ...rps, ...ops));
    const p = frame(svg, ivs, [[0, '0'], [0.5, rate(top / 2)], [1, rate(top)]]);
    const pts = (vs) => vs.map((v, i) => `${(p.x0 + (i + 0.5) * p.slot).toFixed(1)},${(p.y + p.h * (1 - v / top)).toFixed(1)}`).join(' ');
    if (ivs.length > 0) {
      const base = p.y + p.h;
      const first = (p.x0 + 0.5 * p.slot).toFixed(1), last = (p.x0 + (ivs.length - 0.5) * p.slot).toFixed(1);
      svg.append(svgEl('polygon', { points: `${first},${base} ${pts(rps)} ${last},${base}`, class: 'area-req' }));
      svg.append(svgEl('polyline', { points: pts(rps), class: 'line-req' }));
      svg.append(svgEl('polyline', { points: pts(ops), class: 'line-origin' }));
    }
    setText('rate-max', ivs.length ? `· client peak ${rate(Math.max(...rps))}/s` : '');
  }

  // --- panels ---

  function showStats(st, ready) {
    const p = st.proxy, req = p.requests || {}, n = total(req);
    const ivs = intervals(), last = ivs[ivs.length - 1];
    setText('instance', st.fleet && st.fleet.self ? st.fleet.self.id : '');
    const rs = (ready && ready.status) || '?';
    setText('ready', rs, 'badge ' + ({ ok: 'ok', degraded: 'warn' }[rs] || 'bad'));
    $('ready').title = (ready && ready.reason) || '';
    setText('updated', 'updated ' + clock(Date.now()));

    setText('hit-ratio', hitsAndMisses(req) ? pct(p.hit_ratio) : '–');
    setText('hit-ratio-all', n ? pct(p.hit_ratio_all) : '–');
    setText('rps', last && last.dt > 0 ? rate(last.total / last.dt) : '–');
    setText('origin-rps', last && last.dt > 0 ? rate(last.origin / last.dt) : '–');
    setText('requests-total', count(n));
    setText('origin-requests', count(p.origin_requests));
    setText('origin-errors', count(p.origin_errors));
    setText('origin-state', p.origin_up ? 'origin up' : 'origin down', p.origin_up ? 'ok-text' : 'bad-text');
    $('origin-state').title = p.origin_last_error || '';

    if (st.l1) {
      setText('l1-bytes', bytes(st.l1.bytes));
      setText('l1-entries', count(st.l1.entries));
      setText('l1-max', bytes(st.l1.max_bytes));
      $('l1-fill').style.width = Math.min(100, st.l1.max_bytes ? 100 * st.l1.bytes / st.l1.max_bytes : 0).toFixed(1) + '%';
    } else {
      setText('l1-bytes', 'off');
      setText('l1-entries', '–');
      setText('l1-max', '–');
      $('l1-fill').style.width = '0';
    }
    if (st.redis) {
      setText('redis-state', st.redis.healthy ? 'healthy' : 'down', st.redis.healthy ? 'big ok-text' : 'big bad-text');
      setText('redis-errors', count(st.redis.errors));
    } else {
      setText('redis-state', 'none', 'big');
      setText('redis-errors', '–');
    }

    const tb = $('results').tBodies[0];
    tb.replaceChildren();
    for (const o of OUTCOMES) {
      const k = o.label, s = SERIES.find((s) => s.has(o));
      const kind = el('td', k, 'kind' + (s ? ' ' + s.mark : ''));
      kind.title = o.meaning || '';
      row(tb, [kind, num(count(req[k])), num(n ? pct((req[k] || 0) / n) : '–')], { kind: k });
    }
    for (const k of Object.keys(req)) if (!KINDS.includes(k)) row(tb, [el('td', k, 'kind'), num(count(req[k])), num(n ? pct(req[k] / n) : '–')], { kind: k });
    row(tb, [el('th', 'total'), num(count(n)), num('')], { kind: 'total' });

    drawTiers(ivs);
    drawRates(ivs);
    showFleet(st.fleet);
  }

  function showFleet(f) {
    const tb = $('fleet').tBodies[0];
    tb.replaceChildren();
    if (!f) {
      setText('fleet-note', 'no Redis: this instance alone');
      return;
    }
    const members = f.members || [];
    setText('fleet-note', f.error || (members.length + ' live'));
    const ms = members.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const m of ms) {
      const info = m.info || {};
      const self = m.id === f.self.id;
      const name = el('td', m.id, 'nowrap');
      if (self) name.append(el('span', ' this', 'tag'));
      const hr = hitsAndMisses(info.requests) ? pct(info.hit_ratio) : '–';
      const seen = m.last_seen ? seconds((Date.now() - Date.parse(m.last_seen)) / 1000) + ' ago' : '';
      row(tb, [name, el('td', info.listen || ''), num(count(total(info.requests))), num(hr), num(seen)], { id: m.id, self: self });
    }
  }

  function showReport(rep) {
    const fill = (table, rows) => {
      const tb = $(table).tBodies[0];
      tb.replaceChildren();
      for (const r of rows) {
        const hr = hitsAndMisses(r.answers) ? pct(r.hit_ratio) : '–';
        const ratio = num(hr);
        if (hr !== '–') ratio.classList.add(r.hit_ratio >= 0.8 ? 'ok-text' : r.hit_ratio >= 0.4 ? 'warn-text' : 'bad-text');
        const reason = el('td', r.main_reason ? `${r.main_reason} (${share(r.main_reason_share)})` : '–', 'mono');
        const known = r.main_reason && REASONS && REASONS.get(r.main_reason);
        if (known) reason.title = known.meaning;
        row(tb, [el('td', r.pattern, 'mono'), num(count(r.requests)), ratio, reason, withCode(el('td', null, 'advice'), r.advice)],
          { pattern: r.pattern });
      }
      if (!rows.length) row(tb, [el('td', 'no requests yet', 'muted')]);
    };
    fill('report', rep.patterns || []);
    const routes = rep.routes || [];
    $('routes').hidden = $('routes-title').hidden = routes.length === 0;
    fill('routes', routes);
  }

  function showPurges(list) {
    const tb = $('purges').tBodies[0];
    tb.replaceChildren();
    for (const p of list.slice(0, 10)) {
      let what = p.query;
      try {
        what = decodeURIComponent(p.query);
      } catch (e) {
        // shown as sent
      }
      const at = el('td', clock(p.at));
      at.title = p.at;
      const status = num(p.status);
      status.classList.add(p.status === 200 ? 'ok-text' : p.status === 202 ? 'warn-text' : 'bad-text');
      row(tb, [at, el('td', what, 'mono'), status, el('td', p.remote, 'muted')], { query: p.query, status: p.status });
    }
    if (!list.length) row(tb, [el('td', 'none since start', 'muted')]);
  }

  async function inspect(u) {
    const r = await api('cache?url=' + encodeURIComponent(u));
    const box = $('inspect-result');
    box.replaceChildren();
    box.className = '';
    box.dataset.url = u;
    if (r.status === 404) {
      box.dataset.state = 'not-cached';
      box.append(el('span', 'not cached', 'notcached'), el('span', ' ' + u, 'mono muted'));
      return;
    }
    if (r.status !== 200 || !r.body) {
      box.dataset.state = 'error';
      box.append(el('span', (r.body && r.body.error) || 'answered ' + r.status, 'error'));
      return;
    }
    const b = r.body;
    box.dataset.state = 'cached';
    const dl = el('dl');
    const item = (field, label, value, wide) => {
      dl.append(el('dt', label));
      const dd = el('dd', value, wide ? 'wide' : '');
      dd.dataset.field = field;
      dl.append(dd);
    };
    const rem = b.remaining_seconds;
    item('url', 'URL', b.url, true);
    item('key', 'key', printable(b.key), true);
    item('tiers', 'tiers', (b.tiers || []).join(', '));
    item('status', 'status', b.status);
    item('age', 'age', seconds(b.age_seconds));
    item('ttl', 'TTL left', rem > 0 ? seconds(rem) : 'stale for ' + seconds(rem));
    item('stored_at', 'stored at', new Date(b.stored_at).toLocaleString('en-GB'));
    item('size', 'size', bytes(b.size));
    item('tags', 'tags', (b.tags || []).join(', ') || '–');
    item('vary', 'vary', (b.vary || []).join(', ') || '–');
    box.append(dl);
    if ((b.variants || []).length) box.append(variantsTable(b.variants));
    const det = el('details');
    det.append(el('summary', 'headers'));
    const t = el('table', null, 'headers');
    const tb = el('tbody');
    for (const [k, vs] of Object.entries(b.headers || {}).sort()) for (const v of vs) row(tb, [el('td', k, 'mono'), el('td', v, 'mono')]);
    t.append(tb);
    det.append(t);
    box.append(det);
  }

  // variantsTable lists every cached variant of a URL that varies, as
  // cacheproxy inspect does: the request header values that select it,
  // its tiers, status, age, freshness left and size.
  function variantsTable(vs) {
    const wrap = el('div', null, 'variants');
    wrap.append(el('h3', vs.length + (vs.length === 1 ? ' variant' : ' variants') + ' cached'));
    const t = el('table', null, 'variants');
    const head = el('thead');
    row(head, ['selected by', 'tiers', 'status', 'age', 'TTL left', 'size'].map((h) => el('th', h)));
    t.append(head);
    const tb = el('tbody');
    for (const v of vs) {
      const sel = Object.entries(v.select || {}).sort().map(([k, x]) => k + ': ' + x).join(', ') || '–';
      const rem = v.remaining_seconds;
      row(tb, [el('td', sel, 'mono'), el('td', (v.tiers || []).join(', ')), num(v.status), num(seconds(v.age_seconds)),
        num(rem > 0 ? seconds(rem) : 'stale for ' + seconds(rem)), num(bytes(v.size))], { key: printable(v.key) });
    }
    t.append(tb);
    wrap.append(t);
    return wrap;
  }

  // --- the loop ---

  async function poll() {
    try {
      const since = samples.length ? samples[samples.length - 1].t : 0;
      // The vocabulary is the server binary's: read once, until a read
      // succeeds (a result a newer server adds is listed with the others).
      const [st, ready, rep, pur, hist, vocab] = await Promise.all([api('stats'), api('readyz'), api('report?top=10'), api('purges'),
        api('history?since=' + since), REASONS ? null : api('vocabulary')]);
      if (vocab && (vocab.status !== 200 || !vocab.body)) throw new Error('GET /vocabulary answered ' + vocab.status);
      if (vocab) vocabularyFrom(vocab.body);
      if (st.status !== 200 || !st.body) throw new Error('GET /stats answered ' + st.status);
      showError('');
      showTokenState(false);
      if (hist.status === 200 && hist.body) record(hist.body.samples || []);
      showStats(st.body, ready.body);
      if (rep.status === 200 && rep.body) showReport(rep.body);
      if (pur.status === 200 && pur.body) showPurges(pur.body.purges || []);
      if (inspectURL) await inspect(inspectURL);
    } catch (e) {
      if (e instanceof Unauthorized) {
        showError('The admin API answered 401: give its token (-admin-token) in the token field, or open the page as /ui/#token=...');
        showTokenState(true);
      } else {
        showError('admin API: ' + e.message);
      }
    } finally {
      polls++;
      document.body.dataset.polls = polls;
    }
  }

  async function loop() {
    await poll();
    setTimeout(loop, POLL_MS);
  }

  function start() {
    takeTokenFromFragment();
    showTokenState(false);
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      token = $('token-input').value.trim();
      $('token-input').value = '';
      sessionStorage.setItem(TOKEN_KEY, token);
      poll();
    });
    $('token-forget').addEventListener('click', () => {
      token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState(false);
      poll();
    });
    $('inspect-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      inspectURL = $('inspect-url').value.trim();
      const q = new URLSearchParams(location.search);
      if (inspectURL) q.set('inspect', inspectURL);
      else q.delete('inspect');
      window.history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
      if (inspectURL) inspect(inspectURL).catch((e) => showError('inspect: ' + e.message));
      else $('inspect-result').replaceChildren();
    });
    inspectURL = new URLSearchParams(location.search).get('inspect') || '';
    $('inspect-url').value = inspectURL;
    loop();
  }

  start();
})();
