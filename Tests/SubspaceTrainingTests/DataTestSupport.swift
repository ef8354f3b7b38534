import Foundation
import SubspaceModel
@testable import SubspaceTraining
import SubspaceTestSupport

/// The shared test files under this target's old name.
typealias DataTestSupport = TestFiles

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
