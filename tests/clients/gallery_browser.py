"""The web gallery in a real browser (tests/api/web/browser.rs runs this): Debian's Chromium,
driven by Playwright for Python through the system browser (never a downloaded one).

Usage: gallery_browser.py PLAN.json — the plan names the server, one-time sign-in links for two
accounts, the files to upload and where screenshots go. Each step asserts what a person would
notice; the first failure exits non-zero with its reason. Prints one JSON line of findings the
Rust test checks against the server.
"""

import json
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--autoplay-policy=no-user-gesture-required"]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_until(predicate, message, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(message)


def main():
    plan = json.load(open(sys.argv[1]))
    base = plan["base"]
    findings = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        # console errors, each marked with whether the test was cutting a request off then (the
        # browser reports the cut itself; nothing else may show up)
        errors = []
        cutting = {"on": False}
        page.on("console", lambda m: errors.append((cutting["on"], m.text)) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append((False, str(e))))
        requests = []
        page.on("request", lambda r: requests.append((r.method, r.url, r.headers.get("range"))))

        # sign in: the link's page names the account and spends the link on a click
        page.goto(plan["ann_link"])
        page.get_by_role("button", name="Sign in as ann").click()
        page.wait_for_url(base + "/")
        check(page.locator(".who").inner_text() == "ann", "signed in as ann")
        cookie = [c for c in context.cookies() if c["name"] == "ferry_session"][0]
        check(cookie["httpOnly"] and cookie["sameSite"] == "Strict", f"cookie attributes: {cookie}")
        check(page.evaluate("document.cookie").find("ferry_session") < 0, "script cannot read the session cookie")

        # the grid: the uploaded JPEG and PNG as thumbnails, the video with its badge
        page.wait_for_selector(".tile")
        for name in plan["pictures"]:
            tile = page.locator(f'.tile[title="{name}"] img')
            tile.scroll_into_view_if_needed()
            wait_until(lambda: page.evaluate("(img) => img.complete && img.naturalWidth > 0", tile.element_handle()), f"{name}'s thumbnail shows")
        video_tile = page.locator(f'.tile[title="{plan["video"]}"]')
        check(plan["video_badge"] in video_tile.inner_text(), f"the video tile has its badge with the duration: {video_tile.inner_text()}")
        check(not page.locator("#drop-hint").is_visible(), "the drop hint shows only while dragging")
        # the first screen costs one request for the items and one for the filter, not one per item
        api_calls = sorted(r[1].split("?")[0].replace(base, "") for r in requests if "/api/" in r[1] and "/api/timeline/" not in r[1])
        check(api_calls == ["/api/sources", "/api/timeline"], f"first screen API requests: {api_calls}")
        # grouped by day: everything was stored just now, under today's heading
        today = page.evaluate("new Date().toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' })")
        headings = page.eval_on_selector_all(".day h2", "hs => hs.map(h => h.textContent)")
        check(headings == [today], f"one day heading, today ({today}): {headings}")
        check(page.locator(".day .grid .tile").count() == 5, "every tile sits in its day's grid")
        # the source filter lists the account's devices and folders, and filters
        options = page.eval_on_selector_all("#filter-source option", "os => os.map(o => o.value)")
        check("device:cam" in options, f"sources offered: {options}")
        page.select_option("#filter-source", "device:cam")
        wait_until(lambda: page.locator(".tile").count() == 3, "3 tiles shown")
        page.select_option("#filter-type", "video")
        wait_until(lambda: page.locator(".tile").count() == 1, "1 tiles shown")
        check(page.locator(".tile").get_attribute("title") == plan["video"], "the type filter keeps the video")
        page.select_option("#filter-type", "")
        page.select_option("#filter-source", "")
        wait_until(lambda: page.locator(".tile").count() == 5, "5 tiles shown")
        page.screenshot(path=f"{plan['artifacts']}/gallery-desktop.png", full_page=True)

        # the keyboard reaches the controls and opens a tile
        page.focus("#upload-button")
        check(page.evaluate("document.activeElement.id") == "upload-button", "the upload button takes focus")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        check(page.evaluate("document.activeElement.classList.contains('tile')"), "Tab reaches the first tile")
        page.keyboard.press("Enter")
        page.wait_for_selector("#viewer[open]")
        page.keyboard.press("Escape")

        # the viewer plays the video (the original: browsers play H.264 MP4), and seeking to
        # its end asks for a range from where it seeks
        # on a link of 1 MB/s (a phone's), so the browser has fetched only the start when it seeks
        throttle = context.new_cdp_session(page)
        throttle.send("Network.enable")
        link_speed = {"offline": False, "latency": 0, "uploadThroughput": -1}
        throttle.send("Network.emulateNetworkConditions", {**link_speed, "downloadThroughput": 1_000_000})
        video_tile.click()
        page.wait_for_selector("#viewer-stage video")
        video = "document.querySelector('#viewer-stage video')"
        wait_until(lambda: page.evaluate(f"{video}.currentTime") > 0.3, "the video plays")
        source = page.evaluate(f"{video}.currentSrc")
        check(source.endswith("/original"), f"the playable original is shown: {source}")
        before = len(requests)
        page.evaluate(f"(() => {{ const v = {video}; v.currentTime = v.duration - 1; }})()")
        wait_until(lambda: page.evaluate(f"{video}.currentTime") >= 18 and page.evaluate(f"{video}.readyState") >= 2, "the video seeks")
        seeks = [r[2] for r in requests[before:] if r[1] == source and r[2]]
        starts = [int(r.split("=")[1].split("-")[0]) for r in seeks]
        check(any(start > 0 for start in starts), f"seeking asked for a range past the start: {seeks}")
        findings["seek_range_from"] = max(starts)
        throttle.send("Network.emulateNetworkConditions", {**link_speed, "downloadThroughput": -1})
        # keyboard: the next item and back, then close
        page.keyboard.press("ArrowRight")
        wait_until(lambda: page.locator("#viewer-title").inner_text() != plan["video"], "ArrowRight shows the next item")
        page.keyboard.press("ArrowLeft")
        wait_until(lambda: page.locator("#viewer-title").inner_text() == plan["video"], "ArrowLeft shows the video again")
        page.keyboard.press("Escape")
        check(not page.evaluate("document.getElementById('viewer').open"), "Escape closes the viewer")

        # what browsers cannot show is shown through its rendition: the HEVC clip plays, the
        # HEIC photo shows as its JPEG preview
        page.locator(f'.tile[title="{plan["hevc"]}"]').click()
        page.wait_for_selector("#viewer-stage video")
        wait_until(lambda: page.evaluate(f"{video}.currentTime") > 0.3, "the HEVC clip's rendition plays")
        check(page.evaluate(f"{video}.currentSrc").endswith("/rendition"), "the clip plays from its rendition")
        page.keyboard.press("Escape")
        page.locator(f'.tile[title="{plan["heic"]}"]').click()
        picture = "document.querySelector('#viewer-stage img')"
        wait_until(lambda: page.evaluate(f"{picture} && {picture}.complete && {picture}.naturalWidth") == 320, "the HEIC photo shows")
        check(page.evaluate(f"{picture}.src").endswith("/rendition"), "the photo shows its JPEG preview")
        facts = page.locator("#viewer-facts").inner_text()
        check("320 × 240" in facts and "phone" in facts, f"the photo's facts: {facts}")
        page.keyboard.press("Escape")

        # download gives the original's bytes
        page.locator(f'.tile[title="{plan["pictures"][0]}"]').click()
        page.wait_for_selector("#viewer[open]")
        link = page.locator("#viewer-download")
        check(link.get_attribute("download") == plan["pictures"][0], "download keeps the name")
        got = page.request.get(base + link.get_attribute("href"))
        check(got.status == 200 and len(got.body()) == plan["beach_size"], f"download: {got.status}, {len(got.body())} bytes")

        # upload through the page while the viewer shows the JPEG: the first PATCH's connection
        # drops and the page tries again by itself; the new item appears in the timeline, and
        # the viewer still knows which item it shows (the list was rebuilt under it)
        tus = []
        page.on("request", lambda r: tus.append(r.method) if "/files/" in r.url else None)
        dropped = []

        def drop_first_patch(route):
            if route.request.method == "PATCH" and not dropped:
                dropped.append(route.request.url)
                return route.abort("connectionreset")
            route.continue_()

        page.route("**/files/**", drop_first_patch)
        cutting["on"] = True
        page.set_input_files("#upload-input", plan["small_upload"])
        small = plan["small_upload"].rsplit("/", 1)[1]
        page.wait_for_selector(f'.tile[title="{small}"]', timeout=30000)
        page.wait_for_selector("#uploads:not([aria-busy])", timeout=30000)
        cutting["on"] = False
        page.unroute("**/files/**")
        check(dropped and tus[:4] == ["POST", "PATCH", "HEAD", "PATCH"], f"retried after the drop: {tus}")
        check(page.evaluate("document.getElementById('viewer').open"), "the viewer stayed open")
        check(page.locator("#viewer-title").inner_text() == plan["pictures"][0], "the viewer shows the same item")
        page.keyboard.press("ArrowLeft")
        wait_until(lambda: page.locator("#viewer-title").inner_text() == plan["pictures"][1], "ArrowLeft goes to the item stored after it")
        page.keyboard.press("Escape")

        # a file dropped on the page is uploaded too
        page.evaluate(
            """(name) => {
                const data = new DataTransfer();
                data.items.add(new File(["dropped bytes"], name, { type: "text/plain" }));
                document.dispatchEvent(new DragEvent("dragenter", { dataTransfer: data, bubbles: true }));
                document.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true }));
            }""",
            plan["dropped"],
        )
        page.wait_for_selector(f'.tile[title="{plan["dropped"]}"]', timeout=30000)
        check(page.locator(f'.tile[title="{plan["dropped"]}"] .placeholder').inner_text() == "TXT", "a file without a thumbnail shows a placeholder")
        check(not page.locator("#drop-hint").is_visible(), "the drop hint is gone after the drop")

        # a big upload, interrupted by a reload while its second chunk is on the way, resumes
        big = plan["big_upload"]
        big_name = big.rsplit("/", 1)[1]
        held = []

        def hold_second_patch(route):
            if route.request.method == "PATCH":
                held.append(route)
                if len(held) == 2:
                    return  # never answered: the reload cuts it off
            route.continue_()

        page.route("**/files/**", hold_second_patch)
        page.set_input_files("#upload-input", big)
        # route handlers run while Playwright is waiting, so wait with it
        for _ in range(300):
            if len(held) >= 2:
                break
            page.wait_for_timeout(100)
        check(len(held) >= 2, "the second chunk was sent")
        # the bar shows what the server has while the second chunk is on its way
        bar = page.locator(f'#uploads li:has-text("{big_name}") progress')
        shown, whole = bar.evaluate("b => [b.value, b.max]")
        check(8 << 20 <= shown < whole, f"the progress bar moved: {shown} of {whole}")
        cutting["on"] = True  # the reload cuts the held request off
        page.reload()
        page.unroute("**/files/**")
        resumed = []
        page.on("request", lambda r: resumed.append((r.method, r.headers.get("upload-offset"))) if "/files/" in r.url else None)
        page.set_input_files("#upload-input", big)
        page.wait_for_selector(f'.tile[title="{big_name}"]', timeout=60000)
        cutting["on"] = False
        check(resumed and resumed[0][0] == "HEAD", f"the resumed upload asked where it stood: {resumed}")
        first_patch = [r for r in resumed if r[0] == "PATCH"][0]
        check(int(first_patch[1]) > 0, f"the resumed upload did not start over: {resumed}")
        findings["resumed_at"] = int(first_patch[1])

        # delete, with confirmation
        page.on("dialog", lambda d: d.accept())
        doomed = plan["delete"]
        page.locator(f'.tile[title="{doomed}"]').click()
        page.click("#viewer-delete")
        page.wait_for_selector(f'.tile[title="{doomed}"]', state="detached")
        # the viewer moves on to the next item, as photo apps do; close it
        check(page.locator("#viewer-title").inner_text() != doomed, "the viewer shows the next item")
        page.keyboard.press("Escape")

        # the devices page
        page.click("#nav-devices")
        page.wait_for_selector("#devices table")
        rows = page.eval_on_selector_all("#devices tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
        cam = [r for r in rows if r[0] == "cam"]
        # door.png is gone: two events left
        check(cam and cam[0][1] == "2" and cam[0][3] == "1 photos, 1 videos", f"the device is listed with its stats: {rows}")
        usage = page.locator("#usage").inner_text()
        check("Items" in usage and "Quota" in usage, f"the account's usage: {usage}")

        # at phone width the grid still fits
        page.click("#nav-timeline")
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_selector(".tile")
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        check(not overflow, "no sideways scrolling at phone width")
        page.screenshot(path=f"{plan['artifacts']}/gallery-phone.png", full_page=False)
        unexpected = [text for (cut, text) in errors if not (cut and "net::ERR_" in text)]
        check(not unexpected, f"console errors: {unexpected}")

        # another account sees none of ann's media
        other = browser.new_context()
        bob = other.new_page()
        bob.goto(plan["bob_link"])
        bob.get_by_role("button", name="Sign in as bob").click()
        bob.wait_for_url(base + "/")
        bob.wait_for_selector("#timeline-end:has-text('Nothing here yet')")
        check(bob.locator(".tile").count() == 0, "bob sees no tiles")

        # signing out ends the session: the page asks to sign in again
        page.click("#signout button")
        page.wait_for_selector('input[name="token"]')
        browser.close()
    print(json.dumps(findings))


if __name__ == "__main__":
    main()
