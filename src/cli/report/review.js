/* neardup review page: renders the groups of the JSON in #nd-data, lets the
   user mark files, change keepers, filter, sort and compare, and exports
   the decisions for `neardup apply`. Cards are rendered a screenful at a
   time as the user scrolls, so thousands of groups stay responsive. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('nd-data').textContent);
  var G = D.groups;
  var BATCH = 24;
  var ACTS = ['trash', 'move', 'hardlink', 'delete'];
  var PAST = { trash: 'trashed', move: 'moved', hardlink: 'replaced by a hard link', delete: 'deleted' };
  var view = [], rendered = 0, cur = -1, curFile = -1;
  var act = ACTS.indexOf(D.action) >= 0 ? D.action : 'trash';

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else e.setAttribute(k, attrs[k] === true ? '' : attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  /* decimal units, one decimal, as the CLI's totals line */
  function human(b) {
    if (b < 1000) return b + ' bytes';
    var u = ['kB', 'MB', 'GB', 'TB', 'PB'], v = b / 1000, i = 0;
    while (v >= 999.95 && i < 4) { v /= 1000; i++; }
    return v.toFixed(1) + ' ' + u[i];
  }
  function pct(f) {
    if (f.exact) return 'identical (100%)';
    /* rounded down: only an exact copy reads 100% */
    return (Math.floor(Math.max(0, Math.min(1, f.sim)) * 1000 + 1e-6) / 10) + '%';
  }
  function simOf(f) { return f.exact ? 1 : f.sim; }

  G.forEach(function (g, gi) {
    g.idx = gi;
    g.keep = 0;
    g.files.forEach(function (f, fi) {
      f.orig = fi;
      f.mark = D.action !== 'report' && fi > 0 && !f.protect;
    });
    g.minSim = 1;
    for (var i = 1; i < g.files.length; i++) g.minSim = Math.min(g.minSim, simOf(g.files[i]));
  });
  function saving(g) {
    var s = 0;
    g.files.forEach(function (f, fi) { if (fi !== g.keep) s += f.size; });
    return s;
  }
  function order(g) {
    var o = [g.keep];
    g.files.forEach(function (f, fi) { if (fi !== g.keep) o.push(fi); });
    return o;
  }

  /* ---- page frame ---- */
  var total = el('p', { cls: 'total', id: 'total', role: 'status', 'aria-live': 'polite' });
  var fSim = el('input', { type: 'range', id: 'f-sim', min: 0, max: 100, step: 1, value: 0 });
  var fOut = el('output', { id: 'f-sim-out', for: 'f-sim', text: '0%' });
  var sortSel = el('select', { id: 'sort' }, [
    el('option', { value: 'report', text: 'report order' }),
    el('option', { value: 'space', text: 'space saved' }),
    el('option', { value: 'sim', text: 'least similar first' })]);
  var actSel = el('select', { id: 'act' }, ACTS.map(function (a) { return el('option', { value: a, text: a }); }));
  actSel.value = act;
  var exportBtn = el('button', { cls: 'btn primary', id: 'export', type: 'button', text: 'Export decisions' });
  var cmdLine = el('p', { cls: 'keys', id: 'cmd' });
  var meta = G.length + ' groups, ' + D.duplicates + ' duplicates; min similarity ' +
    (Math.round(D.min_sim * 1000) / 10) + '% (' + D.score + ' score), keep rule ' + D.keep_rule + '. Index ' + D.index.path;
  var bar = el('header', { cls: 'bar' }, [
    el('h1', { text: 'neardup review' }),
    el('p', { cls: 'meta', text: meta }),
    el('div', { cls: 'controls' }, [
      el('label', { for: 'f-sim' }, ['Every member at least', fSim, fOut, 'similar']),
      el('label', { for: 'sort' }, ['Sort by', sortSel]),
      el('label', { for: 'act' }, ['Action for apply', actSel]),
      exportBtn]),
    total,
    el('p', { cls: 'keys', id: 'keys' }, ['Keys: ', el('kbd', { text: 'j' }), ' / ', el('kbd', { text: 'k' }),
      ' next / previous group, ', el('kbd', { text: 'h' }), ' / ', el('kbd', { text: 'l' }), ' previous / next file, ',
      el('kbd', { text: 'space' }), ' mark, ', el('kbd', { text: 'a' }), ' all but the keeper, ',
      el('kbd', { text: 'u' }), ' unmark group, ', el('kbd', { text: 'c' }), ' compare, ',
      el('kbd', { text: 'Esc' }), ' close.']),
    cmdLine]);
  var main = el('main', { id: 'groups', 'aria-label': 'Groups of near-duplicates' });
  var more = el('div', { id: 'more', 'aria-hidden': 'true' });
  document.body.appendChild(bar);
  document.body.appendChild(main);
  document.body.appendChild(more);
  /* scrolling to a focused card must not leave it under the sticky bar */
  function pad() { document.documentElement.style.scrollPaddingTop = (bar.offsetHeight + 8) + 'px'; }
  window.addEventListener('resize', pad);
  pad();

  /* ---- cards ---- */
  function statusOf(g, fi) {
    var f = g.files[fi];
    if (fi === g.keep) return { cls: 'keep', badge: ['k', '\u2714 KEEP'], act: 'kept' };
    if (f.mark) return { cls: 'marked', badge: ['m', '\u2716 MARKED'], act: 'will be ' + PAST[act] + ' by neardup apply' };
    if (f.protect) return { cls: 'left', badge: ['l', 'LEFT'], act: 'left alone (protected)' };
    return { cls: 'left', badge: ['l', 'LEFT'], act: 'left alone' };
  }
  function reasonOf(g) {
    if (g.keep === 0) return 'kept: ' + g.reason;
    return 'kept: chosen by you (the report kept ' + g.files[0].name + ': ' + g.reason + ')';
  }
  function fileCard(g, fi) {
    var f = g.files[fi], st = statusOf(g, fi), id = 'g' + g.group + 'f' + fi;
    var role = fi === g.keep ? 'kept' : f.mark ? 'marked' : 'left alone';
    var img = f.thumb ? el('img', { src: f.thumb, alt: f.name + ', ' + f.w + '\u00d7' + f.h + ' ' + f.format + ', ' + role, loading: 'lazy', decoding: 'async' })
      : el('span', { cls: 'none', text: 'cannot read ' + f.name });
    var other = fi === g.keep ? order(g)[1] : g.keep;
    var thumb = el('button', { cls: 'thumb', type: 'button', 'data-do': 'compare', 'data-a': other, 'data-b': fi,
      'aria-label': 'Compare ' + f.name + ' with ' + g.files[other].name }, [img]);
    var badges = el('div', { cls: 'badges' }, [el('span', { cls: 'badge ' + st.badge[0], text: st.badge[1] }),
      f.exact ? el('span', { cls: 'badge e', text: 'EXACT COPY' }) : null,
      f.protect ? el('span', { cls: 'badge p', text: 'PROTECTED' }) : null]);
    var mk = el('input', { type: 'checkbox', cls: 'mk', id: id + 'm', 'data-do': 'mark', checked: f.mark,
      disabled: fi === g.keep || f.protect });
    mk.checked = !!f.mark;
    var kp = el('input', { type: 'radio', cls: 'kp', name: 'keep' + g.group, id: id + 'k', 'data-do': 'keep', checked: fi === g.keep });
    var facts = el('dl', { cls: 'facts' }, [
      el('dt', { text: 'similarity', title: 'to the file the report kept' }),
      el('dd', { cls: 'sim', text: f.orig === 0 ? 'reference' : pct(f) }),
      el('dt', { text: 'size' }), el('dd', { text: human(f.size) }),
      el('dt', { text: 'pixels' }), el('dd', { text: f.w + ' \u00d7 ' + f.h }),
      el('dt', { text: 'format' }), el('dd', { text: f.format }),
      el('dt', { text: 'date' }), el('dd', { text: f.date + (f.date_src === 'EXIF' ? ' (taken)' : ' (modified)') }),
      el('dt', { text: 'path' }), el('dd', { cls: 'path', text: f.path }),
      el('dt', { text: 'action' }), el('dd', { cls: 'act', text: st.act })]);
    return el('figure', { cls: 'file ' + st.cls, 'data-f': fi }, [thumb, badges,
      el('p', { cls: 'name', text: f.name }),
      fi === g.keep ? el('p', { cls: 'reason', text: reasonOf(g) }) : null,
      el('div', { cls: 'ctl' }, [el('label', { for: id + 'm' }, [mk, 'mark']), el('label', { for: id + 'k' }, [kp, 'keeper'])]),
      facts]);
  }
  function groupCard(g) {
    var n = g.files.length;
    var h = el('h2', { id: 'g' + g.group + 'h' }, ['Group ' + g.group + ' ',
      el('span', { cls: 'sub', text: n + ' files, ' + human(saving(g)) + ' in copies, lowest similarity ' +
        (Math.floor(Math.max(0, g.minSim) * 1000 + 1e-6) / 10) + '%' })]);
    var sec = el('section', { cls: 'group' + (g.idx === cur ? ' current' : ''), id: 'g' + g.group, 'data-g': g.idx,
      tabindex: -1, 'aria-labelledby': 'g' + g.group + 'h' }, [
      el('div', { cls: 'ghead' }, [h,
        el('button', { cls: 'btn', type: 'button', 'data-do': 'all', text: 'Select all but the keeper' }),
        el('button', { cls: 'btn', type: 'button', 'data-do': 'none', text: 'Unmark all' })]),
      el('div', { cls: 'files' }, order(g).map(function (fi) { return fileCard(g, fi); }))]);
    return sec;
  }
  function cardOf(gi) { return main.querySelector('section[data-g="' + gi + '"]'); }
  /* re-renders group gi in place, keeping the focus on the same control */
  function refresh(gi) {
    var old = cardOf(gi);
    if (!old) return;
    var a = document.activeElement, sel = null;
    if (a && old.contains(a)) {
      if (a.id) sel = '#' + a.id;
      else if (a.dataset.do) sel = '[data-do="' + a.dataset.do + '"]';
    }
    var fresh = groupCard(G[gi]);
    old.replaceWith(fresh);
    if (sel) { var t = fresh.querySelector(sel); if (t) t.focus(); }
  }
  function renderMore() {
    var frag = document.createDocumentFragment(), end = Math.min(view.length, rendered + BATCH);
    for (; rendered < end; rendered++) frag.appendChild(groupCard(G[view[rendered]]));
    main.appendChild(frag);
  }
  function rebuild() {
    var min = +fSim.value / 100;
    fOut.textContent = fSim.value + '%';
    view = G.filter(function (g) { return g.minSim >= min - 1e-9; }).map(function (g) { return g.idx; });
    if (sortSel.value === 'space') view.sort(function (a, b) { return saving(G[b]) - saving(G[a]) || a - b; });
    else if (sortSel.value === 'sim') view.sort(function (a, b) { return G[a].minSim - G[b].minSim || a - b; });
    main.textContent = '';
    rendered = 0;
    if (!view.length) main.appendChild(el('p', { cls: 'empty', text: G.length ? 'No group passes the filter.' : 'No near-duplicates found.' }));
    renderMore();
    totals();
  }
  new IntersectionObserver(function (es) {
    if (es.some(function (e) { return e.isIntersecting; }) && rendered < view.length) renderMore();
  }, { rootMargin: '1200px' }).observe(more);

  function totals() {
    var n = 0, b = 0, hidden = 0, shown = {};
    view.forEach(function (gi) { shown[gi] = 1; });
    G.forEach(function (g) {
      g.files.forEach(function (f, fi) {
        if (fi !== g.keep && f.mark) { n++; b += f.size; if (!shown[g.idx]) hidden++; }
      });
    });
    total.textContent = n + (n === 1 ? ' file, ' : ' files, ') + human(b) + ' marked' +
      (hidden ? ' (' + hidden + ' in groups hidden by the filter)' : '');
    total.dataset.files = n;
    total.dataset.bytes = b;
    cmdLine.textContent = 'Then: neardup apply neardup-decisions.json --action ' + act +
      (act === 'move' ? ' --to DIR' : '') + ' (a dry run; add --yes to carry it out)';
  }

  /* ---- decisions ---- */
  function setMark(g, fi, on) {
    if (fi === g.keep || g.files[fi].protect) return;
    g.files[fi].mark = on;
  }
  function setKeeper(g, fi) {
    g.keep = fi;
    g.files[fi].mark = false;
  }
  function decisions() {
    return {
      format: D.format, version: D.version, index: D.index, cwd: D.cwd, created: D.created,
      exported: new Date().toISOString(), action: act, keep_rule: D.keep_rule,
      groups: G.map(function (g) {
        return {
          group: g.group, files: g.files.map(function (f, fi) {
            var o = { path: f.path };
            if (f.path_b64) o.path_b64 = f.path_b64;
            o.hash = f.hash; o.size = f.size;
            if (f.dev !== undefined) { o.dev = f.dev; o.ino = f.ino; }
            o.decision = fi === g.keep ? 'keep' : f.mark ? 'mark' : 'leave';
            return o;
          })
        };
      })
    };
  }
  exportBtn.addEventListener('click', function () {
    var blob = new Blob([JSON.stringify(decisions(), null, 1) + '\n'], { type: 'application/json' });
    var a = el('a', { href: URL.createObjectURL(blob), download: 'neardup-decisions.json' });
    document.body.appendChild(a);
    a.click();
    a.remove();
  });

  /* ---- events ---- */
  function where(t) {
    var sec = t.closest('section.group'), fig = t.closest('figure.file');
    return { g: sec ? G[+sec.dataset.g] : null, fi: fig ? +fig.dataset.f : -1 };
  }
  main.addEventListener('change', function (e) {
    var w = where(e.target);
    if (!w.g) return;
    if (e.target.dataset.do === 'mark') setMark(w.g, w.fi, e.target.checked);
    else if (e.target.dataset.do === 'keep' && e.target.checked) setKeeper(w.g, w.fi);
    refresh(w.g.idx);
    totals();
  });
  main.addEventListener('click', function (e) {
    var b = e.target.closest('[data-do]');
    if (!b || b.tagName === 'INPUT') return;
    var w = where(b);
    if (!w.g) return;
    if (b.dataset.do === 'compare') { openCompare(w.g, +b.dataset.a, +b.dataset.b); return; }
    w.g.files.forEach(function (f, fi) { setMark(w.g, fi, b.dataset.do === 'all'); });
    refresh(w.g.idx);
    totals();
  });
  main.addEventListener('focusin', function (e) {
    var w = where(e.target);
    if (!w.g) return;
    if (w.g.idx !== cur) {
      var old = cardOf(cur);
      if (old) old.classList.remove('current');
      cur = w.g.idx;
      cardOf(cur).classList.add('current');
    }
    if (w.fi >= 0) curFile = w.fi;
  });
  fSim.addEventListener('input', rebuild);
  sortSel.addEventListener('change', rebuild);
  actSel.addEventListener('change', function () {
    act = actSel.value;
    for (var i = 0; i < rendered; i++) refresh(view[i]);
    totals();
  });

  function focusGroup(pos) {
    if (pos < 0 || pos >= view.length) return;
    while (pos >= rendered) renderMore();
    var sec = cardOf(view[pos]), g = G[view[pos]];
    var t = sec.querySelector('figure[data-f="' + order(g)[1] + '"] .mk:not([disabled])') || sec;
    t.focus();
    sec.scrollIntoView({ block: 'nearest' });
  }
  function focusFile(step) {
    var sec = cardOf(cur);
    if (!sec) return;
    var figs = Array.prototype.slice.call(sec.querySelectorAll('figure.file'));
    var i = figs.findIndex(function (f) { return +f.dataset.f === curFile; });
    var t = figs[Math.max(0, Math.min(figs.length - 1, i + step))];
    if (t) (t.querySelector('.mk:not([disabled])') || t.querySelector('.kp')).focus();
  }
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (!cmp.hidden) {
      if (e.key === 'Escape') { e.preventDefault(); closeCompare(); }
      if (e.key === 'Tab') { /* keep the focus inside the dialog */
        var f = Array.prototype.filter.call(cmp.querySelectorAll('button, input'), function (x) { return !x.closest('[hidden]'); });
        var i = f.indexOf(document.activeElement);
        f[(i + (e.shiftKey ? f.length - 1 : 1)) % f.length].focus();
        e.preventDefault();
      }
      return;
    }
    var t = e.target, tag = t.tagName;
    if (tag === 'SELECT' || (tag === 'INPUT' && t.type === 'range')) return;
    var pos = view.indexOf(cur);
    var g = cur >= 0 ? G[cur] : null;
    switch (e.key) {
      case 'j': focusGroup(pos + 1); break;
      case 'k': focusGroup(pos < 0 ? 0 : pos - 1); break;
      case 'l': focusFile(1); break;
      case 'h': focusFile(-1); break;
      case 'a': if (g) { g.files.forEach(function (f, fi) { setMark(g, fi, true); }); refresh(cur); totals(); } break;
      case 'u': if (g) { g.files.forEach(function (f, fi) { setMark(g, fi, false); }); refresh(cur); totals(); } break;
      case 'c': if (g) { var b = curFile >= 0 && curFile !== g.keep ? curFile : order(g)[1]; openCompare(g, g.keep, b); } break;
      case ' ':
        /* a focused checkbox toggles itself; elsewhere in a group, space marks the current file */
        if (tag === 'INPUT' || tag === 'BUTTON' || !g) return;
        if (curFile >= 0 && curFile !== g.keep) { setMark(g, curFile, !g.files[curFile].mark); refresh(cur); totals(); }
        break;
      default: return;
    }
    e.preventDefault();
  });

  /* ---- compare: side by side, overlay, flicker, difference ---- */
  var cmpA = el('img', { alt: '' }), cmpB = el('img', { alt: '' });
  var stA = el('img', { alt: '' }), stB = el('img', { alt: '' });
  var capA = el('figcaption'), capB = el('figcaption'), capS = el('figcaption'), capD = el('figcaption');
  var canvas = el('canvas', { role: 'img', 'aria-label': 'difference of the two images' });
  var opacity = el('input', { type: 'range', id: 'cmp-op', min: 0, max: 100, value: 50 });
  var modes = {}, mode = 'side', timer = null;
  var head = el('div', { cls: 'cmp-head' }, [el('h2', { id: 'cmp-h', text: 'Compare' })]);
  var modeBox = el('div', { role: 'group', 'aria-label': 'View' });
  [['side', 'Side by side'], ['overlay', 'Overlay'], ['flicker', 'Flicker'], ['diff', 'Difference']].forEach(function (m) {
    modes[m[0]] = el('button', { cls: 'btn', type: 'button', 'aria-pressed': 'false', text: m[1] });
    modes[m[0]].addEventListener('click', function () { setMode(m[0]); });
    modeBox.appendChild(modes[m[0]]);
  });
  var opLabel = el('label', { for: 'cmp-op' }, ['Opacity of B', opacity]);
  var closeBtn = el('button', { cls: 'btn', type: 'button', id: 'cmp-close', text: 'Close (Esc)' });
  head.appendChild(modeBox);
  head.appendChild(opLabel);
  head.appendChild(closeBtn);
  var body = el('div', { cls: 'cmp-body' });
  var note = el('p', { cls: 'cmp-note', id: 'cmp-note' });
  var cmp = el('div', { id: 'cmp', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'cmp-h', hidden: true }, [head, body, note]);
  document.body.appendChild(cmp);
  var lastFocus = null;
  closeBtn.addEventListener('click', closeCompare);
  opacity.addEventListener('input', function () { stB.style.opacity = opacity.value / 100; });

  function openCompare(g, a, b) {
    if (a === undefined || b === undefined || a === b || !g.files[a] || !g.files[b]) return;
    var fa = g.files[a], fb = g.files[b];
    lastFocus = document.activeElement;
    cmpA.src = stA.src = fa.thumb || '';
    cmpB.src = stB.src = fb.thumb || '';
    cmpA.alt = stA.alt = 'A: ' + fa.name;
    cmpB.alt = stB.alt = 'B: ' + fb.name;
    capA.textContent = 'A: ' + fa.name + ' (' + fa.w + '\u00d7' + fa.h + ', ' + human(fa.size) + (a === g.keep ? ', keeper' : '') + ')';
    capB.textContent = 'B: ' + fb.name + ' (' + fb.w + '\u00d7' + fb.h + ', ' + human(fb.size) + (b === g.keep ? ', keeper' : '') + ')';
    head.firstChild.textContent = 'Group ' + g.group + ': ' + fa.name + ' and ' + fb.name;
    cmp.hidden = false;
    setMode(mode);
    closeBtn.focus();
  }
  function closeCompare() {
    clearInterval(timer);
    timer = null;
    cmp.hidden = true;
    if (lastFocus) lastFocus.focus();
  }
  function setMode(m) {
    mode = m;
    clearInterval(timer);
    timer = null;
    for (var k in modes) modes[k].setAttribute('aria-pressed', k === m ? 'true' : 'false');
    opLabel.hidden = m !== 'overlay';
    body.textContent = '';
    note.textContent = '';
    stB.style.opacity = m === 'overlay' ? opacity.value / 100 : 1;
    stB.style.visibility = 'visible';
    if (m === 'side') {
      body.appendChild(el('figure', null, [cmpA, capA]));
      body.appendChild(el('figure', null, [cmpB, capB]));
    } else if (m === 'overlay' || m === 'flicker') {
      capS.textContent = m === 'overlay' ? 'B over A; move the slider to fade between them' : 'A and B in turn, twice a second';
      body.appendChild(el('figure', null, [el('div', { cls: 'stack' }, [stA, stB]), capS]));
      if (m === 'flicker') timer = setInterval(function () {
        stB.style.visibility = stB.style.visibility === 'hidden' ? 'visible' : 'hidden';
      }, 500);
    } else {
      capD.textContent = 'Difference |A \u2212 B| \u00d7 4: black where the two agree';
      body.appendChild(el('figure', null, [canvas, capD]));
      diff();
    }
  }
  function ready(img) {
    return img.complete ? Promise.resolve() : new Promise(function (r) { img.onload = img.onerror = function () { r(); }; });
  }
  /* B scaled to A's size, per-channel absolute difference, amplified */
  function diff() {
    Promise.all([ready(cmpA), ready(cmpB)]).then(function () {
      var w = cmpA.naturalWidth, h = cmpA.naturalHeight;
      if (!w || !h || !cmpB.naturalWidth) { note.textContent = 'no thumbnail to compare'; return; }
      canvas.width = w;
      canvas.height = h;
      var ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(cmpB, 0, 0, w, h);
      var pb = ctx.getImageData(0, 0, w, h);
      ctx.drawImage(cmpA, 0, 0, w, h);
      var pa = ctx.getImageData(0, 0, w, h), d = pa.data, e = pb.data, sum = 0;
      for (var i = 0; i < d.length; i += 4) {
        for (var c = 0; c < 3; c++) {
          var v = Math.abs(d[i + c] - e[i + c]);
          sum += v;
          d[i + c] = Math.min(255, v * 4);
        }
        d[i + 3] = 255;
      }
      ctx.putImageData(pa, 0, 0);
      var mean = sum / (w * h * 3) / 255 * 100;
      note.textContent = 'mean difference ' + mean.toFixed(1) + '% of full scale' +
        (cmpA.naturalWidth / cmpA.naturalHeight !== cmpB.naturalWidth / cmpB.naturalHeight ? '; B was stretched to A\u2019s shape (a crop?)' : '');
      canvas.dataset.mean = mean.toFixed(3);
    });
  }

  rebuild();
  window.ndReview = { decisions: decisions, view: function () { return view.slice(); } };
})();
