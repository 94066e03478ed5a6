# Sphinx settings of the offline documentation site (tools/build_docs.py copies this file next to the pages it makes)
project = 'tabcollab'
copyright = '2026, tabcollab developers'   # the footer's holder (Sphinx leaves it empty)
html_title = 'tabcollab'
extensions = ['myst_nb']
html_theme = 'furo'
nb_execution_mode = 'off'                 # the notebooks' own outputs, as saved (tests run them: nbdev-test)
nb_output_stderr = 'remove'               # library warnings are not documentation
myst_enable_extensions = ['colon_fence', 'html_image']
myst_heading_anchors = 3
html_copy_source = False
html_show_sourcelink = False
exclude_patterns = ['_build', '**.ipynb_checkpoints']
myst_all_links_external = True            # links are nbdev's `page.html#symbol`: already right in the built site
html_favicon = 'favicon.svg'
html_static_path = ['_static']           # tabcollab.css, written by build_docs.py: tables in outputs
html_css_files = ['tabcollab.css']
