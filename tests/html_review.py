#!/usr/bin/python3
# The review page in a real browser (`make test-html`): Debian's chromium,
# driven by chromium-driver through python3-selenium, headless, no network.
# A report is made from a small real index of copies of data/ images in a
# scratch folder; the test marks and unmarks files (mouse and keyboard),
# changes a keeper, filters, sorts, opens the compare view, checks the
# running total, exports the decisions (a real download), then runs
# `neardup apply` on them: the dry run touches nothing, --action move --yes
# moves exactly the marked files, and undo puts them back. The layout is
# checked at two window sizes (no horizontal scroll, no overlapping text in
# the cards) with a screenshot of each; KEEP_SHOT=FILE keeps the 1280 px one.
# One line per check: PASS name / FAIL name: why.
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

B = os.environ["NEARDUP_BIN"]
ROOT = os.getcwd()
DATA = os.path.join(ROOT, "data")
os.environ["NEARDUP_MODEL"] = os.path.join(ROOT, "tests/data/cli/tiny.ndm")
os.environ.pop("NEARDUP_INDEX", None)
failed = 0


def check(name, ok, why=""):
    global failed
    print(f"PASS {name}" if ok else f"FAIL {name}: {why}")
    failed += 0 if ok else 1
    return ok


def run(*args, want=0):
    p = subprocess.run([B, *args], capture_output=True, text=True)
    if p.returncode != want:
        print(f"FAIL {' '.join(args[:2])}: exit {p.returncode}, want {want}: {p.stderr[-800:]}")
        sys.exit(1)
    return p


def sums(d):
    out = {}
    for dp, _, fs in os.walk(d):
        for f in fs:
            p = os.path.join(dp, f)
            out[os.path.relpath(p, d)] = hashlib.md5(open(p, "rb").read()).hexdigest()
    return out


def human(b):  # the page's and the CLI's decimal units
    if b < 1000:
        return f"{b} bytes"
    v, u = b / 1000, 0
    while v >= 999.95 and u < 4:
        v /= 1000
        u += 1
    return f"{v:.1f} {['kB', 'MB', 'GB', 'TB', 'PB'][u]}"


T = os.path.realpath(tempfile.mkdtemp(prefix="neardup-review."))
try:
    photos = os.path.join(T, "photos")
    os.makedirs(photos)
    for f in ["astronaut.jpg", "astronaut_half.png", "chelsea.jpg", "chelsea_q25.jpg", "hubble.jpg",
              "hubble_crop_q70.jpg", "rocket.jpg", "rocket_exif6.jpg", "coins.png", "brick.jpg"]:
        shutil.copy(os.path.join(DATA, f), photos)
    shutil.copy(os.path.join(DATA, "chelsea.jpg"), os.path.join(photos, "chelsea copy.jpg"))
    os.chdir(T)
    db = os.path.join(T, "db")
    run("ingest", "-q", "--index", db, photos)
    report = os.path.join(T, "report.html")
    run("dedup", "-q", "--index", db, "--score", "raw", "--min-sim", "0.975", "--format", "html", "-o", report)
    data = json.loads(open(report).read().split('id="nd-data">', 1)[1].split("</script>", 1)[0])
    groups = data["groups"]
    check("report_groups", len(groups) == 4 and sorted(len(g["files"]) for g in groups) == [2, 2, 2, 3],
          [len(g["files"]) for g in groups])
    gi3 = next(i for i, g in enumerate(groups) if len(g["files"]) == 3)

    dl = os.path.join(T, "dl")
    os.makedirs(dl)
    opts = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--allow-file-access-from-files", "--window-size=1280,900", "--force-device-scale-factor=1"]:
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    opts.add_experimental_option("prefs", {"download.default_directory": dl,
                                           "download.prompt_for_download": False})
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                           options=opts)
    drv.set_page_load_timeout(60)
    try:
        drv.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": dl})
        drv.get("file://" + report)
        js = drv.execute_script
        total = lambda: drv.find_element(By.ID, "total").text
        card = lambda g: drv.find_element(By.CSS_SELECTOR, f'section[data-g="{g}"]')
        box = lambda g, f: card(g).find_element(By.CSS_SELECTOR, f'figure[data-f="{f}"] .mk')

        def click(e):  # into the middle of the window, clear of the sticky bar
            js("arguments[0].scrollIntoView({block: 'center'})", e)
            e.click()

        def wait(cond, what, secs=10):
            end = time.time() + secs
            while time.time() < end:
                if cond():
                    return True
                time.sleep(0.05)
            return check(what, False, "timed out")

        wait(lambda: len(drv.find_elements(By.CSS_SELECTOR, "section.group")) == 4, "render")
        check("cards", len(drv.find_elements(By.CSS_SELECTOR, "section.group")) == 4)
        imgs = drv.find_elements(By.CSS_SELECTOR, "section.group img")
        check("thumbnails_alt", len(imgs) == 9 and all(i.get_attribute("alt") for i in imgs),
              [i.get_attribute("alt") for i in imgs])
        first = card(0).find_element(By.CSS_SELECTOR, "figure.file")
        check("keeper_first", "KEEP" in first.text and "kept: " in first.text and first.get_attribute("data-f") == "0",
              first.text)
        sims = [e.text for e in drv.find_elements(By.CSS_SELECTOR, ".sim") if e.text != "reference"]
        check("percent", len(sims) == 5 and all(t.endswith("%)") or (t.endswith("%") and 0 < float(t[:-1]) <= 100)
                                               for t in sims), sims)
        check("facts", all(k in first.text for k in ("pixels", "format", "date", "path", "action")), first.text)
        check("nothing_marked", total() == "0 files, 0 bytes marked", total())

        # mark by mouse, unmark, mark by keyboard (j/k then space)
        sz = lambda g, f: groups[g]["files"][f]["size"]
        click(box(0, 1))
        check("mark", total() == f"1 file, {human(sz(0, 1))} marked", total())
        check("marked_text", "MARKED" in card(0).find_element(By.CSS_SELECTOR, 'figure[data-f="1"]').text)
        click(box(0, 1))
        check("unmark", total() == "0 files, 0 bytes marked", total())
        js("document.activeElement.blur()")
        cur = lambda: js("var s = document.activeElement.closest('section'); return s ? s.dataset.g : null")
        ActionChains(drv).send_keys("j").perform()  # the current group was 0
        a = cur()
        ActionChains(drv).send_keys("j").perform()
        b = cur()
        ActionChains(drv).send_keys("k").perform()
        check("keys_jk", (a, b, cur()) == ("1", "2", "1"), (a, b, cur()))
        ActionChains(drv).send_keys(" ").perform()
        marked = {(1, 1)}
        check("key_space", total() == f"1 file, {human(sz(1, 1))} marked", total())
        focus_ok = js("var a=document.activeElement, s=getComputedStyle(a); "
                      "return s.outlineStyle!=='none' && parseFloat(s.outlineWidth)>=2")
        check("visible_focus", focus_ok)

        # select all but the keeper in the 3-file group, then change its keeper
        click(card(gi3).find_element(By.CSS_SELECTOR, '[data-do="all"]'))
        marked |= {(gi3, 1), (gi3, 2)}
        want = sum(sz(g, f) for g, f in marked)
        check("all_but_keeper", total() == f"{len(marked)} files, {human(want)} marked", total())
        click(card(gi3).find_element(By.CSS_SELECTOR, 'figure[data-f="2"] .kp'))
        marked -= {(gi3, 2)}
        first = card(gi3).find_element(By.CSS_SELECTOR, "figure.file")
        check("keeper_changed", first.get_attribute("data-f") == "2" and "chosen by you" in first.text, first.text)
        click(box(gi3, 0))  # the report's keeper now goes
        marked |= {(gi3, 0)}
        want = sum(sz(g, f) for g, f in marked)
        check("totals", total() == f"{len(marked)} files, {human(want)} marked" and
              int(drv.find_element(By.ID, "total").get_attribute("data-bytes")) == want, total())

        # filter by similarity: groups whose lowest similarity is under the bar go
        low = min(min(1 if f["exact"] else f["sim"] for f in g["files"][1:]) for g in groups)
        bar = int(low * 100) + 1
        js("var r=document.getElementById('f-sim'); r.value=arguments[0]; r.dispatchEvent(new Event('input'))", bar)
        shown = len(drv.find_elements(By.CSS_SELECTOR, "section.group"))
        want_shown = sum(1 for g in groups if min(1 if f["exact"] else f["sim"] for f in g["files"][1:]) >= bar / 100)
        check("filter", shown == want_shown and shown < 4, (shown, want_shown))
        check("filter_keeps_marks", total().startswith(f"{len(marked)} files, {human(want)} marked ("), total())
        js("var r=document.getElementById('f-sim'); r.value=0; r.dispatchEvent(new Event('input'))")

        # sort by space saved
        Select(drv.find_element(By.ID, "sort")).select_by_value("space")
        order = [int(s.get_attribute("data-g")) for s in drv.find_elements(By.CSS_SELECTOR, "section.group")]
        saved = lambda i: sum(f["size"] for k, f in enumerate(groups[i]["files"]) if k != (2 if i == gi3 else 0))
        check("sort_space", [saved(i) for i in order] == sorted((saved(i) for i in range(4)), reverse=True), order)

        # compare: side by side, overlay, flicker, difference; Esc closes
        click(card(2).find_element(By.CSS_SELECTOR, 'figure[data-f="1"] .thumb'))
        check("compare_open", drv.find_element(By.ID, "cmp").is_displayed())
        for b in drv.find_elements(By.CSS_SELECTOR, "#cmp .btn[aria-pressed]"):
            b.click()
        wait(lambda: js("return document.querySelector('#cmp canvas') && "
                        "document.querySelector('#cmp canvas').dataset.mean !== undefined"), "compare_diff")
        mean = js("return parseFloat(document.querySelector('#cmp canvas').dataset.mean)")
        check("compare_diff", mean is not None and 0 < mean < 50, mean)
        ActionChains(drv).send_keys("\ue004" * 9).perform()  # Tab: the focus stays in the dialog
        check("compare_focus_trap", js("return document.getElementById('cmp').contains(document.activeElement)"))
        ActionChains(drv).send_keys("\ue00c").perform()  # Escape
        check("compare_close", not drv.find_element(By.ID, "cmp").is_displayed())
        Select(drv.find_element(By.ID, "sort")).select_by_value("report")

        # layout at two window sizes
        def layout(w, h, shot):
            drv.set_window_size(w, h)
            js("window.scrollTo(0,0)")
            time.sleep(0.3)
            sw, cw = js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            check(f"no_hscroll_{w}", sw <= cw, f"scrollWidth {sw} > clientWidth {cw}")
            bad = js("""
              var sel = 'h2, .btn, .badge, .name, .reason, .ctl label, .facts dt, .facts dd, .total, .meta, .controls label';
              var els = Array.from(document.querySelectorAll(sel)).filter(function (e) {
                var r = e.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight; });
              var out = [];
              for (var i = 0; i < els.length; i++) for (var j = i + 1; j < els.length; j++) {
                var a = els[i], b = els[j];
                if (a.contains(b) || b.contains(a)) continue;
                var p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
                var ox = Math.min(p.right, q.right) - Math.max(p.left, q.left);
                var oy = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
                if (ox > 1 && oy > 1) out.push(a.className + '/' + a.tagName + ' x ' + b.className + '/' + b.tagName);
              }
              return [els.length, out.slice(0, 5)];""")
            check(f"no_overlap_{w}", bad[0] > 20 and not bad[1], bad)
            drv.save_screenshot(shot)
            check(f"screenshot_{w}", os.path.getsize(shot) > 10000)

        layout(1280, 900, os.path.join(T, "shot1280.png"))
        layout(700, 1000, os.path.join(T, "shot700.png"))
        drv.set_window_size(1280, 900)
        if os.environ.get("KEEP_SHOT"):  # the README's picture: a group with marks
            js("arguments[0].scrollIntoView({block: 'center'})", card(gi3))
            time.sleep(0.5)
            drv.save_screenshot(os.environ["KEEP_SHOT"])
        if os.environ.get("KEEP_SHOTS"):
            for f in ("shot1280.png", "shot700.png"):
                shutil.copy(os.path.join(T, f), os.path.join(os.environ["KEEP_SHOTS"], f))

        # export (a real download)
        click(drv.find_element(By.ID, "export"))
        out = os.path.join(dl, "neardup-decisions.json")
        wait(lambda: os.path.exists(out) and os.path.getsize(out) > 0, "export_download")

        # thousands of groups: the page draws a screenful, more as it scrolls
        big = os.path.join(T, "big.html")
        page = open(report).read()
        head, rest = page.split('id="nd-data">', 1)
        body, tail = rest.split("</script>", 1)
        d = json.loads(body)
        one = d["groups"][0]
        tiny = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
        d["groups"] = [dict(one, group=i + 1, files=[dict(f, thumb=tiny, path=f"{f['path']}.{i}") for f in one["files"]])
                       for i in range(5000)]
        open(big, "w").write(head + 'id="nd-data">' + json.dumps(d).replace("<", "\\u003c") + "</script>" + tail)
        t0 = time.time()
        drv.get("file://" + big)
        wait(lambda: len(drv.find_elements(By.CSS_SELECTOR, "section.group")) > 0, "big_render", 60)
        first_n = js("return document.querySelectorAll('section.group').length")
        print(f"# 5000 groups: first cards after {time.time() - t0:.2f} s, {first_n} cards in the document")
        js("window.scrollTo(0, document.body.scrollHeight)")
        wait(lambda: js("return document.querySelectorAll('section.group').length") > first_n, "big_more")
        check("big_incremental", first_n <= 48 and js("return document.querySelectorAll('section.group').length") < 200,
              first_n)
        js("document.activeElement.blur()")
        ActionChains(drv).send_keys("j" * 60).perform()
        check("big_keys", js("return document.activeElement.closest('section').id") == "g60",
              js("return document.activeElement.outerHTML.slice(0, 80)"))

    finally:
        drv.quit()

    dec = json.load(open(out))
    got = {(gi, fi) for gi, g in enumerate(dec["groups"]) for fi, f in enumerate(g["files"]) if f["decision"] == "mark"}
    keeps = [[fi for fi, f in enumerate(g["files"]) if f["decision"] == "keep"] for g in dec["groups"]]
    check("export_marks", got == marked, (got, marked))
    check("export_keepers", keeps == [[2] if gi == gi3 else [0] for gi in range(4)], keeps)
    f0 = dec["groups"][0]["files"][0]
    check("export_fields", all(k in f0 for k in ("path", "hash", "size", "dev", "ino", "decision")) and
          dec["index"]["path"] == db and len(f0["hash"]) == 32, f0)

    # apply: a dry run changes nothing; --yes moves exactly the marked files
    before = sums(photos)
    p = run("apply", out, "--action", "move", "--to", os.path.join(T, "moved"))
    lines = [l for l in p.stdout.splitlines() if l]
    want_paths = sorted(groups[g]["files"][f]["path"] for g, f in marked)
    check("apply_dry_run", sums(photos) == before and not os.path.exists(os.path.join(T, "moved")) and
          sorted(l.split("\t")[1] for l in lines) == want_paths and all(l.startswith("would move") for l in lines),
          p.stdout)
    p = run("apply", out, "--action", "move", "--to", os.path.join(T, "moved"), "--yes")
    after = sums(photos)
    gone = sorted(os.path.join(photos, k) for k in before if k not in after)
    moved = sums(os.path.join(T, "moved"))
    check("apply_moved_exactly_marked", gone == want_paths and
          all(after[k] == before[k] for k in after) and len(moved) == len(marked) and
          sorted(moved.values()) == sorted(before[os.path.relpath(x, photos)] for x in want_paths),
          (gone, want_paths, p.stdout, p.stderr))
    run("undo", "--index", db, "--yes")
    check("undo_restores", sums(photos) == before)
finally:
    shutil.rmtree(T, ignore_errors=True)
sys.exit(1 if failed else 0)
