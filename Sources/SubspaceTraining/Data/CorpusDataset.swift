/// Language-model samples from a token shard: window i is tokens `[i·T, i·T + T + 1)`, with
/// `ids = window[0..<T]` and `targets = window[1...T]`. Windows do not overlap except that a window's
/// last target is the next window's first input, so every token but the first is a target exactly once
/// per epoch and `count = (tokens − 1) / T`; a tail shorter than a window is not used.
public struct CorpusDataset: TrainingSampleSource {
    public let tokens: TokenArray
    public let sequence: Int
    public let count: Int

    public init(shards: TokenShards, split: TokenShards.Split = .train, sequence: Int) {
        self.init(tokens: shards.tokens(split), sequence: sequence)
    }

    public init(tokens: TokenArray, sequence: Int) {
        precondition(sequence > 0, "sequence \(sequence)")
        self.tokens = tokens
        self.sequence = sequence
        count = max(0, tokens.count - 1) / sequence
    }

    public func write(_ index: Int, ids: UnsafeMutableBufferPointer<Int32>, targets: UnsafeMutableBufferPointer<Int32>) {
        precondition(index >= 0 && index < count, "sample \(index) of \(count)")
        precondition(ids.count == sequence && targets.count == sequence, "buffers must hold \(sequence) ids")
        let start = index * sequence
        tokens.copy(start..<start + sequence, into: ids)
        tokens.copy(start + 1..<start + sequence + 1, into: targets)
    }
}
