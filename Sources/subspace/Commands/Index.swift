import ArgumentParser
import Foundation
import SubspaceStudies

/// `subspace index --root runs/demo`: the index page over every study's report under a folder.
struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write ROOT/index.html linking each study's report (every subfolder with a finding.json) with its one-line finding.")

    @Option(help: ArgumentHelp("Folder holding the studies' output folders.", valueName: "dir")) var root: String = "runs/demo"

    func validate() throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isFolder), isFolder.boolValue else {
            throw ValidationError("--root: \(root) is not a folder")
        }
    }

    func run() throws {
        let found = StudyIndex.scan(root: root)
        let path = try StudyIndex.write(root: root, found: found)
        for (folder, f) in found.entries { print("\(f.study) (\(folder)): \(f.finding)") }
        for message in found.unreadable { FileHandle.standardError.write(Data("warning: \(message); listed as unreadable\n".utf8)) }
        let n = found.entries.count
        print("index: \(path) (\(n) stud\(n == 1 ? "y" : "ies")" + (found.unreadable.isEmpty ? "" : ", \(found.unreadable.count) unreadable finding.json") + ")")
    }
}
