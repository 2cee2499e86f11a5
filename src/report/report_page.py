"""The HTML of `moe report`: one self-contained page (figures inlined as PNG data
URIs, no script, no external resource), so it opens from disk anywhere."""
import base64
import html
import math

CSS = """body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}figure{margin:1em 0}figure img{max-width:100%}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}.star{color:#b00;font-weight:bold}"""


class Page:
    def __init__(self, title):
        self.title, self.parts, self.figures = title, [], 0

    def h2(self, text):
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text, cls=None):
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{html.escape(text)}</p>")

    def figure(self, png_bytes, caption):
        self.figures += 1
        data = base64.b64encode(png_bytes).decode("ascii")
        self.parts.append(f'<figure><img class="fig" id="fig{self.figures}" alt="{html.escape(caption)}" '
                          f'src="data:image/png;base64,{data}"><figcaption>Figure {self.figures}. '
                          f"{html.escape(caption)}</figcaption></figure>")

    def table(self, header, rows, cls=None, left=1):
        """rows: lists of cells; a cell is text or (text, css class). The first `left` columns align left."""
        def cell(tag, i, c):
            text, k = (c if isinstance(c, tuple) else (c, None))
            classes = " ".join(x for x in (("l" if i < left else None), k) if x)
            return f"<{tag}{f' class={chr(34)}{classes}{chr(34)}' if classes else ''}>{html.escape(str(text))}</{tag}>"
        out = [f'<table{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>',
               "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"]
        for r in rows:
            out.append("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>")
        self.parts.append("\n".join(out) + "</table>")

    def html(self):
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.parts) + "\n</body></html>\n")


def pm(m, s, digits=4):
    """mean +- std as the protocol's table.md writes it (std omitted for one seed)."""
    return f"{m:.{digits}f} ± {s:.{digits}f}" if s is not None and not math.isnan(s) else f"{m:.{digits}f}"
