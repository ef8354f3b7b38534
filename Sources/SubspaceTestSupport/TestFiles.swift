import Foundation

/// Fixture paths and scratch folders shared by every test target.
public enum TestFiles {
    /// The package's root folder (configs/, launch/, …).
    public static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// `../shared/fixtures` beside the package (or `$SUBSPACE_FIXTURES`).
    public static var fixtures: String {
        ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }

    public static var bpeTokenizer: String { fixtures + "/bpe-tokenizer/tokenizer.json" }
    public static var longText: String { fixtures + "/bpe-tokenizer/long_text.txt" }

    /// A fresh empty folder under the temporary directory, removed by `cleanUp`.
    public static func temporaryFolder(_ label: String = "data") throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("subspace-\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public static func cleanUp(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    public static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// A folder of texts named so their order by name is not their order of creation.
    public static func textFolder(_ documents: [(name: String, text: String)]) throws -> String {
        let folder = try temporaryFolder("texts")
        for (name, text) in documents { try write(text, to: folder + "/" + name) }
        return folder
    }
}
