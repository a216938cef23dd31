// Building the page from text, never from HTML.
