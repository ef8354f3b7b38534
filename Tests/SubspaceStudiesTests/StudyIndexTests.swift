import Foundation
import Testing
@testable import SubspaceStudies
import SubspaceTestSupport

@Suite struct StudyIndexTests {
    /// Findings one and two levels down are listed; a finding.json that is there but cannot be read (bad JSON,
    /// a missing key) is named with its reason, on the page and in the scan, instead of silently left out.
    @Test func unreadableFindingsAreNamed() throws {
        let root = try TestFiles.temporaryFolder("study-index")
        defer { TestFiles.cleanUp(root) }
        let fm = FileManager.default
        for folder in ["a", "group/b", "broken", "partial", "empty"] {
            try fm.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        try StudyFinding(study: "a", title: "Study A", report: "report.html", finding: "A holds").write(to: root + "/a")
        try StudyFinding(study: "b", title: "Study B", report: "report.html", finding: "B holds").write(to: root + "/group/b")
        try TestFiles.write("{bad", to: root + "/broken/finding.json")
        try TestFiles.write("{\"study\": \"p\", \"title\": \"P\", \"report\": \"r.html\"}", to: root + "/partial/finding.json")

        let scan = StudyIndex.scan(root: root)
        #expect(scan.entries.map(\.folder) == ["a", "group/b"])
        #expect(scan.unreadable.count == 2, "\(scan.unreadable)")
        #expect(scan.unreadable.contains { $0.contains("broken/finding.json") && $0.contains("not valid JSON") }, "\(scan.unreadable)")
        #expect(scan.unreadable.contains { $0.contains("partial/finding.json") && $0.contains("missing 'finding'") }, "\(scan.unreadable)")
        #expect(throws: (any Error).self) { try StudyFinding.load(folder: root + "/broken") }
        #expect(try StudyFinding.load(folder: root + "/empty") == nil)

        let html = try String(contentsOfFile: try StudyIndex.write(root: root), encoding: .utf8)
        #expect(html.contains("a/report.html") && html.contains("group/b/report.html"))
        #expect(html.contains("Unreadable finding") && html.contains("broken/finding.json"))
    }
}
