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

    /// `folder/finding.json`, or nil when there is none or it cannot be read (`load` says why).
    public static func read(folder: String) -> StudyFinding? { try? load(folder: folder) }

    /// `folder/finding.json`; nil when the folder has none; throws, naming the file, when one is there but
    /// is not a readable finding (edited by hand, cut short by a full disk).
    public static func load(folder: String) throws -> StudyFinding? {
        let path = (folder as NSString).appendingPathComponent("finding.json")
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw AnalysisError(file: path, "cannot read: \(FileSystemMessage.reason(error))")
        }
        do { return try JSONDecoder().decode(StudyFinding.self, from: data) } catch {
            throw AnalysisError(file: path, "not a study finding: \(FileSystemMessage.reason(error))")
        }
    }
}

/// `index.html` over the studies under a root folder: each subfolder (one or two levels down) with a
/// finding.json is listed with a link to its report and its one-line finding.
public enum StudyIndex {
    /// What is under a root: the findings (folder relative to the root), and the finding.json files that
    /// are there but cannot be read, each as a message naming the file.
    public struct Scan: Sendable {
        public var entries: [(folder: String, finding: StudyFinding)] = []
        public var unreadable: [String] = []
    }

    /// The findings under `root` (one or two levels down), sorted by folder, and the unreadable ones.
    public static func scan(root: String) -> Scan {
        let fm = FileManager.default
        var out = Scan()
        // true when `folder` holds a finding.json, readable or not (its subfolders are then not searched).
        func visit(_ folder: String, as name: String) -> Bool {
            do {
                guard let f = try StudyFinding.load(folder: folder) else { return false }
                out.entries.append((name, f))
            } catch {
                out.unreadable.append("\(error)")
            }
            return true
        }
        for name in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() {
            let folder = (root as NSString).appendingPathComponent(name)
            if visit(folder, as: name) { continue }
            for sub in ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted() {
                _ = visit((folder as NSString).appendingPathComponent(sub), as: (name as NSString).appendingPathComponent(sub))
            }
        }
        return out
    }

    /// Writes `root/index.html` over `found` (by default a fresh `scan(root:)`; unreadable findings listed as
    /// such); returns its path.
    @discardableResult
    public static func write(root: String, found: Scan? = nil, title: String = "Subspace studies") throws -> String {
        let found = found ?? scan(root: root)
        let entries = found.entries
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
        for message in found.unreadable { html += "\n<li><b>Unreadable finding</b>: \(esc(message))</li>" }
        if entries.isEmpty && found.unreadable.isEmpty { html += "\n<li>No study has finished here yet.</li>" }
        html += "\n</ul>" + HTMLPage.end
        let path = (root as NSString).appendingPathComponent("index.html")
        try AtomicFile.write(Array(html.utf8), to: path)
        return path
    }
}
