import Foundation
import SubspaceModel
@testable import SubspaceTraining

/// Temporary folders and fixtures for the data tests.
enum DataTestSupport {
    /// `../shared/fixtures` beside the package (or `$SUBSPACE_FIXTURES`).
    static var fixtures: String {
        ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }

    static var bpeTokenizer: String { fixtures + "/bpe-tokenizer/tokenizer.json" }
    static var longText: String { fixtures + "/bpe-tokenizer/long_text.txt" }

    /// A fresh empty folder under the temporary directory, removed by `cleanUp`.
    static func temporaryFolder(_ label: String = "data") throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("subspace-\(label)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func cleanUp(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// A folder of texts named so their order by name is not their order of creation.
    static func textFolder(_ documents: [(name: String, text: String)]) throws -> String {
        let folder = try temporaryFolder("texts")
        for (name, text) in documents { try write(text, to: folder + "/" + name) }
        return folder
    }
}

/// A tokenizer with more ids than UInt16 holds: id = 66,000 + byte, so shards must be int32.
struct WideTokenizer: Tokenizer {
    var vocabularySize: Int { 66_000 + 256 }
    var endOfText: Int? { 65_999 }
    var specialTokens: [String: Int] { ["<|endoftext|>": 65_999] }
    func encode(_ text: String) -> [Int] { text.utf8.map { 66_000 + Int($0) } }
    func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        try ids.map {
            guard $0 >= 66_000, $0 < 66_256 else { throw TokenizerError.unknownID($0, vocabularySize: vocabularySize) }
            return UInt8($0 - 66_000)
        }
    }
}
