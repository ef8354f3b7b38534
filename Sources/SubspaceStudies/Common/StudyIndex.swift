import Foundation
import SubspaceCore
import SubspaceAnalysis

/// A study's one-line result for the index page: every study writes `finding.json` beside its report.
public struct StudyFinding: Sendable, Codable, Equatable {
    /// Short id of the study (e.g. "delta-students", "qk-freeze").
    public var study: String
    public var title: String
    /// The report's path relative to the folder holding finding.json.
    public var report: String
    /// One sentence a reader can take away, with its caveat ("inconclusive: …" where it is).
    public var finding: String
    /// The command that produced it.
    public var command: String?

    public init(study: String, title: String, report: String, finding: String, command: String? = nil) {
        self.study = study
        self.title = title
        self.report = report
        self.finding = finding
        self.command = command
    }

    /// Writes `folder/finding.json` (atomically).
    public func write(to folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(self)), to: (folder as NSString).appendingPathComponent("finding.json"))
    }

    public static func read(folder: String) -> StudyFinding? {
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("finding.json")) else { return nil }
        return try? JSONDecoder().decode(StudyFinding.self, from: data)
    }
}

/// `index.html` over the studies under a root folder: each subfolder (one or two levels down) with a
/// finding.json is listed with a link to its report and its one-line finding.
public enum StudyIndex {
    /// The findings under `root`, sorted by folder.
    public static func collect(root: String) -> [(folder: String, finding: StudyFinding)] {
        let fm = FileManager.default
        var out: [(String, StudyFinding)] = []
        let first = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted()
        for name in first {
            let folder = (root as NSString).appendingPathComponent(name)
            if let f = StudyFinding.read(folder: folder) { out.append((name, f)); continue }
            for sub in ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted() {
                let path = (folder as NSString).appendingPathComponent(sub)
                if let f = StudyFinding.read(folder: path) { out.append(((name as NSString).appendingPathComponent(sub), f)) }
            }
        }
        return out
    }

    /// Writes `root/index.html`; returns its path.
    @discardableResult
    public static func write(root: String, title: String = "Subspace studies") throws -> String {
        let entries = collect(root: root)
        let esc = escapeXML
        var html = HTMLPage.head(title: title) + """
            <h1>\(esc(title))</h1>
            <p>Each study below links its own report (tables, figures, the exact command). Findings are one line each; the
            reports say what the numbers do and do not show.</p><ul>
            """
        for (folder, f) in entries {
            let link = (folder as NSString).appendingPathComponent(f.report)
            html += "\n<li><a href=\"\(esc(link))\"><b>\(esc(f.title))</b></a> <code>\(esc(f.study))</code><br><span class=\"finding\">\(esc(f.finding))</span>"
            if let c = f.command { html += "<br><small><code>\(esc(c))</code></small>" }
            html += "</li>"
        }
        if entries.isEmpty { html += "\n<li>No study has finished here yet.</li>" }
        html += "\n</ul>" + HTMLPage.end
        let path = (root as NSString).appendingPathComponent("index.html")
        try AtomicFile.write(Array(html.utf8), to: path)
        return path
    }
}
