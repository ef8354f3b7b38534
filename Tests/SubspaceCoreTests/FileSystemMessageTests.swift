import Foundation
@testable import SubspaceCore
import Testing

/// Foundation's file errors as the sentences users read. On Linux the underlying POSIX error is a Swift
/// `POSIXError` (not an NSError), which an earlier version missed: every such error then read "The
/// operation could not be completed. (NSCocoaErrorDomain error 512.)".
@Suite struct FileSystemMessageTests {
    @Test func aFileInThePathIsNamed() throws {
        let root = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let file = root + "/afile"
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let creating = #expect(throws: (any Error).self) {
            try FileManager.default.createDirectory(atPath: file + "/sub/deeper", withIntermediateDirectories: true)
        }
        #expect(creating.map(FileSystemMessage.reason) == "\(file) is a file, not a folder")
        let reading = #expect(throws: (any Error).self) { _ = try String(contentsOfFile: file + "/x.yaml", encoding: .utf8) }
        #expect(reading.map(FileSystemMessage.reason) == "\(file) is a file, not a folder")
        let listing = #expect(throws: (any Error).self) { _ = try FileManager.default.contentsOfDirectory(atPath: file) }
        #expect(listing.map(FileSystemMessage.reason) == "\(file) is a file, not a folder")
        #expect(FileSystemMessage.firstFileComponent(of: file + "/a/b") == file)
        #expect(FileSystemMessage.firstFileComponent(of: root + "/missing/b") == nil)
    }

    @Test func missingFilesAndBadJSON() {
        let missing = #expect(throws: (any Error).self) { _ = try String(contentsOfFile: "/nonexistent-subspace/x", encoding: .utf8) }
        #expect(missing.map(FileSystemMessage.reason) == "no such file or folder")
        let json = #expect(throws: (any Error).self) { _ = try JSONSerialization.jsonObject(with: Data("{\"a\": 1,, }".utf8)) }
        let reason = json.map(FileSystemMessage.reason) ?? ""
        #expect(reason.contains("character 8"), "\(reason)")
    }
}
