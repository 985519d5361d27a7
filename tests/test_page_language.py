"""The page's first paint, before any script, is in the language its script
will choose: ?lang=, the remembered choice, the browser's languages."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

LOADING_KO = "티켓 페이지를 준비하고 있습니다"
LOADING_EN = "Getting your tickets page ready"


def shown(html: str) -> str:
    """The language of the loading block the page shows."""
    blocks = re.findall(r'<div data-paint="(\w+)"[^>]*?( hidden)?>', html)
    visible = [lang for lang, hidden in blocks if not hidden]
    assert len(visible) == 1, blocks
    return visible[0]


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("", None, "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
        ("", None, "en-US,en;q=0.9,ko;q=0.8", "en"),
        ("", None, "fr-FR,fr;q=0.9,ko;q=0.5,en;q=0.2", "ko"),
        ("", None, "en;q=0.3, ko;q=0.6", "ko"),
        ("", None, "ko;q=0, en;q=0.1", "en"),
        ("", None, "ja-JP", "en"),
        ("", None, "", "en"),
        ("", None, "ko;q=x" + ",x" * 5000, "en"),
        ("", "en", "ko-KR", "en"),
        ("", "ko", "en-US", "ko"),
        ("", "xx", "ko-KR", "ko"),
        ("?lang=ko", "en", "en-US", "ko"),
        ("?lang=en", "ko", "ko-KR", "en"),
        ("?lang=zz", None, "ko-KR", "ko"),
    ],
)
async def test_the_first_paint_is_in_the_page_s_language(
    client: httpx.AsyncClient, query: str, cookie: str | None, accept: str, expected: str
) -> None:
    headers = {"Accept-Language": accept}
    if cookie:
        headers["Cookie"] = f"lang={cookie}"
    page = await client.get("/" + query, headers=headers)
    assert page.status_code == 200
    html = page.text
    assert f'<html lang="{expected}">' in html
    assert shown(html) == expected
    assert "Accept-Language" in page.headers["vary"] and "Cookie" in page.headers["vary"]
    # either way both texts are there: the script keeps one (web/i18n.js)
    assert LOADING_KO in html and LOADING_EN in html


WEB = Path(__file__).resolve().parent.parent / "frontrow" / "web"


def translations(language: str) -> dict[str, str]:
    """The page's texts in a language, as web/i18n/<language>.js holds them."""
    source = (WEB / "i18n" / f"{language}.js").read_text(encoding="utf-8")
    return dict(re.findall(r'^\s*"([\w.]+)":\s*"((?:[^"\\]|\\.)*)",?$', source, re.M))


@pytest.mark.parametrize("language", ["en", "ko"])
def test_the_first_paint_says_what_the_script_will_say(language: str) -> None:
    # The server paints the loading block before any script runs, so its
    # texts are written in index.html as well as in the translations.
    page = (WEB / "index.html").read_text(encoding="utf-8")
    block = re.search(rf'<div data-paint="{language}"[^>]*>(.*?)</div>', page, re.S)
    assert block is not None
    painted = [
        " ".join(text.split())
        for text in re.findall(r"<(?:h1|p)\b[^>]*>(.*?)</(?:h1|p)>", block[1], re.S)
    ]
    said = translations(language)
    assert painted == [said["loading.title"], said["loading.lead"]]
