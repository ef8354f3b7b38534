/// The identity tokenizer: one id per UTF-8 byte, vocabulary 256, no special tokens.
///
/// `encode` then `decodeBytes` round-trips any text exactly. `decode` of ids that do not spell valid UTF-8
/// (a sequence cut in the middle of a character, say) replaces each maximal invalid subsequence with U+FFFD,
/// as `String(decoding:as:)` does.
public struct ByteTokenizer: Tokenizer {
    public init() {}

    public var vocabularySize: Int { 256 }
    public var endOfText: Int? { nil }
    public var specialTokens: [String: Int] { [:] }

    public func encode(_ text: String) -> [Int] { text.utf8.map(Int.init) }

    public func decodeBytes(_ ids: [Int]) throws -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(ids.count)
        for id in ids {
            guard let byte = UInt8(exactly: id) else { throw TokenizerError.unknownID(id, vocabularySize: 256) }
            bytes.append(byte)
        }
        return bytes
    }
}
