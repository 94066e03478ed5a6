"The documentation site, built offline from nbs/, served on 127.0.0.1 and checked in headless Chromium"
import functools, http.server, inspect, os, re, shutil, sys, tempfile, threading, urllib.parse
from pathlib import Path
import pytest

root = Path(__file__).parents[1]
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
for mod in ['sphinx', 'myst_nb', 'furo', 'playwright']:
    pytest.importorskip(mod, reason=f"{mod} is needed to build and check the docs: "
                                    "pip install -c constraints.txt -e '.[dev]'")
if CHROMIUM is None:
    pytest.skip("Chromium not found (apt-get install chromium): the documentation browser test needs it",
                allow_module_level=True)
from playwright.sync_api import sync_playwright

ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
CORE = ['MultiCategorify', 'MultiCatBlock', 'MultiHotEmbedding', 'CollabMultiCatDataLoaders', 'collab_multicat_learner']


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    sys.path.insert(0, str(root/'tools'))
    from build_docs import build
    out = build(tmp_path_factory.mktemp('docs')/'site')
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(out)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}',out
    srv.shutdown()


@pytest.fixture(scope='module')
def browser():
    with sync_playwright() as p:   # the system's Chromium: nothing is downloaded
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def visit(browser, url, width=1400):
    "(page, problems): console errors, page errors and failed requests while loading `url`"
    page,problems = browser.new_page(viewport={'width': width, 'height': 1000}),[]
    page.on('console', lambda m: problems.append(f'console: {m.text}') if m.type=='error' else None)
    page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: problems.append(f'failed: {r.url}'))
    page.on('response', lambda r: problems.append(f'{r.status}: {r.url}') if r.status>=400 else None)
    page.goto(url)
    page.wait_for_load_state('networkidle')
    return page,problems


def pages(out): return sorted(p.relative_to(out).as_posix() for p in out.rglob('*.html') if '_static' not in p.parts)


def test_every_page_loads_without_errors(site, browser):
    base,out = site
    assert {'index.html','api.html','core.html','data.html','models.html','learner.html','tutorial_movielens.html',
            'benchmarks.html','contributing.html','search.html'} <= set(pages(out))
    for name in pages(out):
        page,problems = visit(browser, f'{base}/{name}')
        assert not problems, (name, problems)
        page.close()


def test_api_page_lists_the_core_symbols_with_docstrings(site, browser):
    import tabcollab.all as tc
    page,_ = visit(browser, f'{site[0]}/api.html')
    text = page.inner_text('article')
    for name in CORE:
        doc = inspect.getdoc(getattr(tc, name)).split('\n')[0]
        assert name in text and doc.replace('`', '') in text.replace('`', ''), name
        assert page.locator(f'article h3 a:text-is("{name}")').count() == 1, name
    page.close()


def test_each_module_page_documents_its_symbols(site, browser):
    page,_ = visit(browser, f'{site[0]}/data.html')
    text = page.inner_text('article')
    assert 'CollabMultiCatDataLoaders.from_df' in text and 'Item metadata, one row per item' in text   # parameter docs
    page.close()


def test_tutorial_plots_are_images_that_load(site, browser):
    page,problems = visit(browser, f'{site[0]}/tutorial_movielens.html')
    imgs = page.eval_on_selector_all('article img',
                                     'els => els.map(e => [e.getAttribute("src"), e.complete, e.naturalWidth])')
    assert len(imgs) >= 5, imgs
    assert all(ok and width > 0 for _,ok,width in imgs), imgs
    page.close()


# HTML source that shows as text: tags, closing tags, attributes, escaped brackets
MARKUP = re.compile(r'<(?:table|thead|tbody|tr|th|td|div|span|p|progress|style|img|br)\b|</[a-zA-Z]'
                    r'|\b(?:class|style)="|&lt;|&gt;')


def test_no_page_shows_html_source(site, browser):
    "Outputs saved as HTML (fastprogress tables, dataframes) render as HTML, never as their source in a code block"
    base,out = site
    bad = {}
    for name in pages(out):
        page,_ = visit(browser, f'{base}/{name}')
        text = page.inner_text('article')
        hits = [text[max(0, m.start()-30):m.end()+30].replace('\n', ' ') for m in MARKUP.finditer(text)]
        if hits: bad[name] = (len(hits), hits[:3])
        page.close()
    assert not bad, bad


@pytest.mark.parametrize('name', ['index', 'tutorial_movielens', 'learner', 'cli'])
def test_training_tables_render_as_tables(site, browser, name):
    "`fit_one_cycle`'s progress tables are real tables, one row an epoch; `lr_find`'s empty progress output is gone"
    page,_ = visit(browser, f'{site[0]}/{name}.html')
    tables = page.locator('article table.fastprogress')
    assert tables.count() >= 1, name
    for i in range(tables.count()):
        hdr = [h.strip() for h in tables.nth(i).locator('thead th').all_inner_texts()]
        assert hdr[:3] == ['epoch', 'train_loss', 'valid_loss'] and hdr[-1] == 'time', (name, hdr)
        rows = tables.nth(i).locator('tbody tr').evaluate_all('els => els.map(e => e.querySelectorAll("td").length)')
        assert rows and all(n == len(hdr) for n in rows), (name, hdr, rows)
    empty = page.eval_on_selector_all('article .cell_output > .output.text_html',
                                      'els => els.filter(e => !e.innerText.trim() '
                                      '&& !e.querySelector("img,svg,table")).length')
    assert empty == 0, f'{name}: {empty} empty HTML outputs'
    page.close()


def test_search_finds_embeddingbag(site, browser):
    page,problems = visit(browser, f'{site[0]}/search.html?q=EmbeddingBag')
    page.wait_for_selector('ul.search li', timeout=20_000)
    hits = page.eval_on_selector_all('ul.search li a', 'els => els.map(e => e.getAttribute("href"))')
    assert hits and any(h.startswith(('models.html','index.html','api.html')) for h in hits), hits
    assert not problems
    page.close()


def test_links_between_pages_resolve(site, browser):
    "Every internal link points at a page of the site and, when it has one, an anchor of that page"
    base,out = site
    ids = {name: set(re.findall(r'\bid="([^"]+)"', (out/name).read_text())) for name in pages(out)}
    bad,n = [],0
    for name in pages(out):
        for href in re.findall(r'<a[^>]+href="([^"]+)"', (out/name).read_text()):
            url = urllib.parse.urlparse(href)
            if url.scheme or href.startswith(('mailto:', 'javascript:')) or not (url.path or url.fragment): continue
            target = (Path(name).parent/url.path).as_posix() if url.path else name
            target = os.path.normpath(target)
            n += 1
            if (out/target).is_dir(): target = os.path.join(target, 'index.html')
            if not (out/target).exists(): bad.append((name, href)); continue
            frag = urllib.parse.unquote(url.fragment)
            if frag and target in ids and frag not in ids[target]: bad.append((name, href))
    assert n > 100 and not bad, bad[:20]


def test_screenshots(site, browser):
    "Screenshots of the home and API pages and the tutorial's training table, in $TABCOLLAB_SCREENSHOTS (or a temp dir)"
    dest = Path(os.environ.get('TABCOLLAB_SCREENSHOTS') or tempfile.mkdtemp())
    dest.mkdir(parents=True, exist_ok=True)
    for name in ['index', 'api']:
        page,_ = visit(browser, f'{site[0]}/{name}.html')
        page.screenshot(path=str(dest/f'{name}.png'))
        assert (dest/f'{name}.png').stat().st_size > 10_000
        page.close()
    page,_ = visit(browser, f'{site[0]}/tutorial_movielens.html')
    # the training cell and its table
    cell = page.locator('article .cell', has=page.locator('table.fastprogress')).first
    cell.screenshot(path=str(dest/'tutorial_training.png'))
    assert (dest/'tutorial_training.png').stat().st_size > 5_000
    page.close()
