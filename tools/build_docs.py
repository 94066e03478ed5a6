"""Build the documentation site from nbs/ on this machine: no network, no Quarto.

    python tools/build_docs.py [--out _site]

1. nbdev processes the notebooks (`nbdev.serve.proc_nbs`: it adds a `show_doc` cell for every exported symbol and
   runs them, hides what `#| hide` hides), as `nbdev-docs` does before handing them to Quarto;
2. Sphinx renders the processed notebooks with myst-nb and the furo theme. Why Sphinx: it is maintained, installs
   from PyPI, renders notebooks with their stored outputs (tables, plots) as they are, and its full-text search
   works offline, in the browser.

Where Quarto is installed, `nbdev-docs` still builds the usual nbdev site from the same notebooks (nbs/_quarto.yml,
nbs/nbdev.yml).
"""
import argparse, json, re, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[1]

# The order of the site: home, modules, tutorials, other pages
PAGES = ['index', 'encoding', 'side', 'core', 'collab', 'data', 'block', 'models', 'movielens', 'ranking', 'metrics',
         'learner', 'sparse', 'baselines', 'interpret', 'save', 'cli', 'distributed',
         'api', 'tutorial_movielens', 'benchmarks', 'contributing']
CAPTIONS = {'encoding': 'Modules', 'api': 'Reference', 'tutorial_movielens': 'Tutorials', 'benchmarks': 'Project'}


def page_name(p:Path) -> str:
    "nbdev's page name: the file name without its numeric prefix (00_core.ipynb -> core)"
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', p.stem.lower())


def _doc_url():
    from nbdev.config import get_config
    cfg = get_config(root)
    return f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'


def fix_markdown(text:str, doc_url:str) -> str:
    "Quarto-flavoured markdown from nbdev as plain MyST: relative doc links, no `{...}` link attributes, symbol anchors"
    text = text.replace(doc_url, '')
    text = re.sub(r'(\]\([^)]*\))\{[^}]*\}', r'\1', text)                   # [source](...){target="_blank" ...}
    return re.sub(r'^### (\S+)$', lambda m: f'<a id="{m.group(1).lower()}"></a>\n\n### {m.group(1)}', text, flags=re.M)


SYMBOL_LINK = re.compile(r'\[([^\]]+)\]\(([a-z0-9_]+\.html)#([^)\s]+)\)')

def prune_links(text:str, anchors:dict) -> str:
    "Plain text for nbdev's links to symbols that no page documents (fastai's `show_batch` methods, say)"
    return SYMBOL_LINK.sub(lambda m: m.group(0) if m.group(3) in anchors.get(m.group(2), ()) else m.group(1), text)


def _anchors(text): return set(re.findall(r'<a id="([^"]+)"></a>', text))


def _front_matter(text):
    "(title, description) of a YAML front matter block"
    meta = dict(re.findall(r'^(title|description):\s*(.*(?:\n  .*)*)', text, flags=re.M))
    clean = lambda s: ' '.join(s.split()).strip().strip("'\"") if s else ''
    return clean(meta.get('title')),clean(meta.get('description'))


def _heading(title, description):
    return f"# {title}\n\n" + (f"*{description}*\n" if description else '')


# fastprogress's leftovers in saved outputs: an empty `<div></div>` (`lr_find`), or a bar with its label
PROGRESS = re.compile(r'\s*(?:<div>\s*)*(?:<progress\b[^>]*>\s*</progress>[^<]*)?(?:</div>\s*)*')
HTML_FENCE = re.compile(r'\s*```html\n.*```\s*', re.S)
# fastprogress's CSS, once per kernel: shows nothing
STYLE_ONLY = re.compile(r'\s*(?:<style\b[^>]*>.*?</style>\s*)+', re.S)

def convert_output(o:dict, doc_url:str):
    "A saved output as myst-nb should render it, or `None` where it shows nothing"
    d = o.get('data')
    if d is None: return o
    text = lambda k: ''.join(d[k]) if k in d else None      # nbformat stores text as a list of lines
    html,md = text('text/html'),text('text/markdown')
    if html is not None and (PROGRESS.fullmatch(html) or STYLE_ONLY.fullmatch(html)): return None
    # fasthtml components (fastprogress's tables) also offer their HTML source as a markdown code block: keep the HTML
    if html is not None and md is not None and HTML_FENCE.fullmatch(md):
        return {**o, 'data': {k:v for k,v in d.items() if k!='text/markdown'}}
    if md is not None:                                        # show_doc: nbdev's markdown, alone
        return {**o, 'data': {'text/markdown': re.sub(r'^---$', '<hr>', fix_markdown(md, doc_url), flags=re.M)}}
    return o


def convert_notebook(nb:dict, doc_url:str) -> dict:
    "A notebook processed by nbdev, made ready for myst-nb"
    cells = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type']=='raw' and src.startswith('---'):
            c = {'cell_type': 'markdown', 'metadata': {}, 'source': _heading(*_front_matter(src))}
        elif c['cell_type']=='markdown': c['source'] = fix_markdown(src, doc_url)
        elif c['cell_type']=='code':
            lines = src.splitlines()
            dirs = [l for l in lines if l.startswith('#|')]
            c['source'] = '\n'.join(l for l in lines if not l.startswith('#|'))
            tags = c.setdefault('metadata', {}).setdefault('tags', [])
            if any(re.search(r'echo:\s*false', d) for d in dirs): tags.append('remove-input')
            c['outputs'] = [o for o in (convert_output(o, doc_url) for o in c.get('outputs', [])) if o is not None]
        extra = ['execution_count','outputs'] if c['cell_type']=='code' else ['attachments']
        keys = ['cell_type','metadata','source'] + extra
        c['metadata'] = {k: v for k,v in c.get('metadata', {}).items() if k=='tags'}
        # nbformat's fields only, with ids
        cells.append({'id': f'cell{len(cells)}', **{k: c[k] for k in keys if k in c}})
    nb['cells'] = cells
    nb['nbformat'],nb['nbformat_minor'] = 4,5
    return nb


def api_page(doc_url:str) -> str:
    "Every public symbol of tabcollab (and the methods it adds to fastai's `Learner`) with its signature and docstring"
    import importlib, inspect
    from tabcollab._modidx import d
    out = ["# API reference", "",
           "*Every public name of tabcollab, by module, with the methods it adds to fastai's `Learner`; "
           "each links to its documentation.*", ""]
    mods = sorted(d['syms'], key=lambda m: PAGES.index(m.split('.')[-1]) if m.split('.')[-1] in PAGES else len(PAGES))
    for mod in mods:
        syms,m = d['syms'][mod],importlib.import_module(mod)
        names = list(getattr(m, '__all__', []))
        # patched methods, e.g. Learner.recommend
        names += [k[len(mod)+1:] for k in syms if k.count('.')==len(mod.split('.'))+1 and k.split('.')[-2] not in names
                  and not k.split('.')[-1].startswith('_')]
        entries = []
        for name in names:
            obj = m
            for part in name.split('.'): obj = getattr(obj, part, None)
            if obj is None or not callable(obj) or (getattr(obj, '__module__', mod)!=mod and '.' not in name): continue
            link = syms.get(f'{mod}.{name}', ('',))[0].replace(doc_url, '')
            try: sig = f"{name}{inspect.signature(obj)}"
            except (TypeError, ValueError): sig = name
            doc = (inspect.getdoc(obj) or '').split('\n\n')[0]
            entries += [f"### [{name}]({link})" if link else f"### {name}", "", f"```python\n{sig}\n```", "", doc, ""]
        if entries: out += [f"## {mod}", "", *entries]
    return '\n'.join(out)


# Tables in notebook outputs (dataframes, fastprogress's training tables), in furo's colours (light and dark)
OUTPUT_CSS = """div.cell_output table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
div.cell_output table th, div.cell_output table td {
    padding: .3em .8em; border: 1px solid var(--color-background-border); }
div.cell_output table thead tr, div.cell_output table tbody tr:nth-of-type(even) {
    background: var(--color-background-secondary); }
"""


def toctree(names):
    "The (hidden) toctrees of the home page: the site's navigation"
    groups,cur = [],None
    for n in names:
        if n=='index': continue
        if n in CAPTIONS or cur is None: cur = (CAPTIONS.get(n, 'Pages'), []); groups.append(cur)
        cur[1].append(n)
    return '\n\n'.join(f"```{{toctree}}\n:hidden:\n:caption: {cap}\n\n" + '\n'.join(ns) + "\n```" for cap,ns in groups)


def build(out:Path=root/'_site', quiet=True) -> Path:
    "Process the notebooks with nbdev and render the site with Sphinx into `out`"
    from nbdev.serve import proc_nbs
    proc = Path(proc_nbs(path=str(root/'nbs')))
    doc_url = _doc_url()
    src = Path(tempfile.mkdtemp(prefix='tabcollab-docs-'))
    docs = {}  # page name -> converted notebook (dict) or markdown (str)
    for p in sorted(proc.iterdir()):
        if p.suffix=='.ipynb': docs[page_name(p)] = convert_notebook(json.loads(p.read_text()), doc_url)
        elif p.suffix=='.md':
            text = p.read_text()
            if text.startswith('---'):
                fm,body = text[3:].split('\n---', 1)
                text = _heading(*_front_matter(fm)) + body
            docs[page_name(p)] = fix_markdown(text, doc_url)
    docs['api'] = api_page(doc_url)
    texts = lambda d: d if isinstance(d, str) else '\n'.join(''.join(c['source']) + ''.join(
        o.get('data', {}).get('text/markdown', '') for o in c.get('outputs', [])) for c in d['cells'])
    anchors = {f'{n}.html': _anchors(texts(d)) for n,d in docs.items()}
    for name,d in docs.items():
        if isinstance(d, str): (src/f'{name}.md').write_text(prune_links(d, anchors)); continue
        for c in d['cells']:
            c['source'] = prune_links(''.join(c['source']), anchors)
            for o in c.get('outputs', []):
                if 'text/markdown' in o.get('data', {}):
                    o['data']['text/markdown'] = prune_links(o['data']['text/markdown'], anchors)
        (src/f'{name}.ipynb').write_text(json.dumps(d))
    names = list(docs)
    order = [n for n in PAGES if n in names] + sorted(set(names)-set(PAGES))
    index = json.loads((src/'index.ipynb').read_text())
    index['cells'].append({'id': 'toctree', 'cell_type': 'markdown', 'metadata': {}, 'source': toctree(order)})
    (src/'index.ipynb').write_text(json.dumps(index))
    for f in ['conf.py', 'favicon.svg']: shutil.copy(root/'tools'/'docs'/f, src/f)
    (src/'_static').mkdir()
    (src/'_static'/'tabcollab.css').write_text(OUTPUT_CSS)
    if out.exists(): shutil.rmtree(out)
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-W', '--keep-going', '-q' if quiet else '-v',
           str(src), str(out)]
    subprocess.run(cmd, check=True)
    shutil.rmtree(src)
    return out


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(root/'_site'), help='where to write the site (default: _site)')
    args = p.parse_args()
    print(f"site written to {build(Path(args.out))}/index.html")
