"""Transfer Studio's entry point: page config, navigation over the page files, the sidebar frame
(all in ``pages.common.app_frame``, which a page reached without this file also calls), then the page."""
from pages import common

common.app_frame().run()
