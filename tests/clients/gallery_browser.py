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
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
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
        check("▶" in video_tile.inner_text(), "the video tile has its badge")
        check(not page.locator("#drop-hint").is_visible(), "the drop hint shows only while dragging")
        # the first screen costs a fixed number of API requests, not one per item
        api_calls = sorted({r[1].split("?")[0].replace(base, "") for r in requests if "/api/" in r[1] and "/api/timeline/" not in r[1]})
        check(api_calls == ["/api/sources", "/api/timeline"], f"first screen API requests: {api_calls}")
        findings["first_screen_api_requests"] = len([r for r in requests if "/api/" in r[1] and "/api/timeline/" not in r[1]])
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
        wait_until(lambda: page.locator(".tile").count() == 3, "3 tiles shown")
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

        # the viewer plays the video, and seeking asks for a range
        video_tile.click()
        page.wait_for_selector("#viewer-stage video")
        wait_until(lambda: page.evaluate("document.querySelector('#viewer-stage video').currentTime") > 0.3, "the video plays")
        before = len(requests)
        page.evaluate("(() => { const v = document.querySelector('#viewer-stage video'); v.currentTime = v.duration - 1; })()")
        wait_until(lambda: page.evaluate("document.querySelector('#viewer-stage video').readyState") >= 2, "the video seeks")
        ranged = [r for r in requests if "/api/timeline/" in r[1] and r[2]]
        check(ranged, f"the video was fetched with Range: {requests[-5:]}")
        findings["range_requests"] = len(ranged)
        findings["requests_after_seek"] = len(requests) - before
        # keyboard: the next item, then close
        page.keyboard.press("ArrowRight")
        wait_until(lambda: page.locator("#viewer-title").inner_text() != plan["video"], "ArrowRight shows the next item")
        page.keyboard.press("Escape")
        check(not page.evaluate("document.getElementById('viewer').open"), "Escape closes the viewer")

        # upload through the page: it appears in the timeline
        page.set_input_files("#upload-input", plan["small_upload"])
        small = plan["small_upload"].rsplit("/", 1)[1]
        page.wait_for_selector(f'.tile[title="{small}"]', timeout=20000)

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
        errors.clear()
        page.reload()
        page.unroute("**/files/**")
        errors.clear()  # the cut-off request may be reported by the browser
        resumed = []
        page.on("request", lambda r: resumed.append((r.method, r.headers.get("upload-offset"))) if "/files/" in r.url else None)
        page.set_input_files("#upload-input", big)
        page.wait_for_selector(f'.tile[title="{big_name}"]', timeout=60000)
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
        check("cam" in page.locator("#devices").inner_text(), "the device is listed with its stats")

        # at phone width the grid still fits
        page.click("#nav-timeline")
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_selector(".tile")
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        check(not overflow, "no sideways scrolling at phone width")
        page.screenshot(path=f"{plan['artifacts']}/gallery-phone.png", full_page=False)
        check(not errors, f"console errors: {errors}")

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
