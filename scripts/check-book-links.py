#!/usr/bin/env python3
"""Checks every link of a built mdBook (the HTML in the given directory).

- a relative link must name a file of the book, and its #anchor an id in that file;
- a link into the repository (https://github.com/streamkit/streamkit/blob|tree/main/PATH)
  must name a file or folder that exists in this checkout;
- other absolute links (other sites) are not followed.
Prints each broken link with the page it is on; exits 1 if there is any.
"""
import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag

REPO = "https://github.com/streamkit/streamkit/"
# mdbook's own generated pages: print.html repeats every page with rewritten links.
SKIP_PAGES = {"print.html", "404.html", "toc.html"}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "img" and attrs.get("src"):
            self.links.append(attrs["src"])


def parse(path, cache={}):
    if path not in cache:
        p = Page()
        with open(path, encoding="utf-8") as f:
            p.feed(f.read())
        cache[path] = p
    return cache[path]


def main(book):
    book = os.path.abspath(book)
    repo_root = os.path.abspath(os.path.join(book, "..", ".."))
    broken = []
    pages = 0
    links = 0
    for dirpath, _, files in os.walk(book):
        for name in files:
            if not name.endswith(".html") or name in SKIP_PAGES:
                continue
            page = os.path.join(dirpath, name)
            pages += 1
            for href in parse(page).links:
                links += 1
                url, anchor = urldefrag(href)
                if url.startswith(REPO):
                    rest = url[len(REPO):]
                    for prefix in ("blob/main/", "tree/main/"):
                        if rest.startswith(prefix):
                            target = os.path.join(repo_root, unquote(rest[len(prefix):]))
                            if not os.path.exists(target):
                                broken.append((page, href, "no such file in the repository"))
                            break
                    else:
                        if rest not in ("", "issues", "pulls"):
                            broken.append((page, href, "not a blob/tree link to main"))
                    continue
                if "://" in url or url.startswith(("mailto:", "javascript:")):
                    continue
                target = page if url == "" else os.path.normpath(
                    os.path.join(os.path.dirname(page), unquote(url)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                if not os.path.exists(target):
                    broken.append((page, href, "no such file"))
                    continue
                if anchor and target.endswith(".html") and anchor not in parse(target).ids:
                    broken.append((page, href, "no such anchor"))
    for page, href, why in broken:
        print(f"{os.path.relpath(page, book)}: {href}: {why}")
    print(f"checked {links} links on {pages} pages: {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/book"))
