import Foundation

/// The shell every report page shares: one stylesheet, no scripts or external resources, so a report
/// folder opens offline in any browser. Writers build the body; `head` opens the page and `end` closes it.
public enum HTMLPage {
    /// One stylesheet for every report: numeric tables right-aligned with the first column as a label,
    /// verdict cells (`pass`, `fail`, `na`), plot rows, notes.
    public static let style = """
        body { font-family: system-ui, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; \
        padding: 0 1em; line-height: 1.4; }
        table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
        th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: top; }
        th { background: #f3f3f3; }
        td:first-child, th:first-child { text-align: left; }
        td.pass { background: #d9f2d9; font-weight: bold; } td.fail { background: #f7d4d4; font-weight: bold; } td.na { color: #888; }
        figure { margin: 1.5em 0; overflow-x: auto; }
        .plots { display: flex; flex-wrap: wrap; gap: 1em; }
        svg { display: block; background: #fff; }
        svg text { font-family: system-ui, Helvetica, Arial, sans-serif; }
        code { background: #f3f3f3; padding: 0 3px; }
        .note { color: #555; font-size: 13px; } .finding { color: #333; }
        li { margin: 0.3em 0; }
        """

    /// From `<!DOCTYPE html>` to the opening `<body>`, with the title escaped.
    public static func head(title: String) -> String {
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>\(escapeXML(title))</title>\n<style>\n"
            + style + "\n</style></head>\n<body>\n"
    }

    /// Closes what `head` opened.
    public static let end = "</body></html>\n"

    /// A whole page around `body` (already HTML).
    public static func document(title: String, body: String) -> String { head(title: title) + body + end }
}
