import SubspaceModel

/// Supervised fine-tuning samples: prompt tokens, then response tokens, then an end marker, padded to the
/// sequence length, with only the response and the end marker counting in the loss.
///
/// For an example with prompt ids `p` (P of them) and `full = p + response ids + end marker` (L ids):
/// `ids[t] = full[t]` for t < min(L, T), then `padding`; `targets[t] = full[t + 1]` where t + 1 ≥ P and
/// t + 1 < L, else −100. So the first target is the first response id, predicted from the last prompt
/// position, and the prompt and the padding are masked out. An example with an empty prompt has no
/// position to predict its first response id from, so that id is not trained. Prompt and response are
/// encoded separately, so the boundary between them is exact (no BPE merge spans it) and the prompt ids
/// are those a generation starts from.
///
/// **End marker.** The byte tokenizer has no special tokens, so a response ends with `"\n"` (id 10),
/// which the arithmetic responses never contain; a tokenizer with an end-of-text token (`<|endoftext|>`)
/// ends it with that id; any other tokenizer with the ids of `"\n"`. Generation for exact-match
/// evaluation stops at `stopTokens`.
///
/// **Length.** `full` may hold up to T + 1 ids (the last is only a target). An example whose prompt alone
/// is longer than T (no response id could be a target) is dropped; one whose response does not fit is
/// truncated (the end marker goes first). `summary` counts both.
public struct SFTDataset: TrainingSampleSource {
    public struct Summary: Sendable, Equatable, CustomStringConvertible {
        /// Examples read.
        public var examples: Int
        /// Kept as samples.
        public var kept: Int
        /// Dropped: the prompt alone is longer than the sequence.
        public var droppedLongPrompt: Int
        /// Kept with the response (and end marker) cut at the sequence length.
        public var truncated: Int

        public var description: String {
            "\(examples) examples: \(kept) kept (\(truncated) truncated), \(droppedLongPrompt) dropped (prompt longer than the sequence)"
        }
    }

    /// One kept example as the tokenizer sees it.
    public struct Tokenized: Sendable, Equatable {
        /// Prompt, response and end marker, cut to at most `sequence + 1` ids.
        public var ids: [Int32]
        /// How many of `ids` are the prompt.
        public var promptCount: Int
        /// Chat examples: the ranges of `ids` that are trained (every assistant turn and its end token);
        /// nil: everything after the prompt.
        public var trained: [Range<Int>]? = nil
        /// Chat examples: the ids a generation of the last reply starts from, and that reply.
        public var evaluationPrompt: [Int32]? = nil
        public var evaluationResponse: String? = nil
    }

    public let sequence: Int
    /// Ids appended after each response.
    public let endMarker: [Int32]
    /// Ids at which a generated response ends (the end marker's first id).
    public let stopTokens: Set<Int32>
    /// Input id at padded positions (their targets are −100, so the value only has to be a valid id): 0.
    public let padding: Int32 = 0
    public let summary: Summary
    /// The kept examples, in file order: sample i is example i.
    public let examples: [SFTExample]
    public let tokenized: [Tokenized]
    public var count: Int { tokenized.count }

    /// Reads a JSONL file (see `SFTJSONL` for the shapes accepted).
    public init(file: String, tokenizer: any Tokenizer, sequence: Int, chat: ChatTemplate? = nil) throws {
        try self.init(examples: try SFTJSONL.read(file: file), tokenizer: tokenizer, sequence: sequence, chat: chat, source: file)
    }

    /// Tokenizes `examples`; `source` names them in errors. Throws when no example fits.
    ///
    /// With a `chat` template other than `plain`, an example read from `messages` is the whole
    /// conversation as the template renders it (the ids `apply_chat_template` gives), and every assistant
    /// turn with its end token is trained; everything else is masked. Its evaluation pair is the
    /// conversation before the last reply with the generation prompt, and that reply. Generation stops at
    /// the template's end tokens.
    public init(examples: [SFTExample], tokenizer: any Tokenizer, sequence: Int, chat: ChatTemplate? = nil,
                source: String = "<examples>") throws {
        precondition(sequence > 0, "sequence \(sequence)")
        self.sequence = sequence
        let marker = Self.endMarker(for: tokenizer)
        precondition(!marker.isEmpty, "the tokenizer encodes \"\\n\" as no ids")
        endMarker = marker
        let template = chat.flatMap { $0.format == .plain ? nil : $0 }
        let chatStops = template.map { Set($0.stopTokens(tokenizer).map { Int32($0) }) } ?? []
        stopTokens = Set([marker[0]]).union(chatStops)
        var kept: [SFTExample] = [], tokenized: [Tokenized] = []
        var summary = Summary(examples: examples.count, kept: 0, droppedLongPrompt: 0, truncated: 0)
        for example in examples {
            if let template, let messages = example.messages {
                let (all, ranges) = try template.encode(messages, tokenizer: tokenizer, addGenerationPrompt: false, source: source)
                guard let first = ranges.first, first.lowerBound >= 1, first.lowerBound <= sequence else {
                    summary.droppedLongPrompt += 1
                    continue
                }
                var ids = all.map { Int32($0) }
                if ids.count > sequence + 1 {
                    ids.removeLast(ids.count - (sequence + 1))
                    summary.truncated += 1
                }
                let last = messages.lastIndex { $0.role == "assistant" }!
                let prompt = try template.encode(Array(messages[..<last]), tokenizer: tokenizer, addGenerationPrompt: true, source: source).ids
                var response = messages[last].content
                if template.format == .llama3 || template.format == .llama2 { response = ChatTemplate.trimmed(response) }
                kept.append(example)
                tokenized.append(Tokenized(ids: ids, promptCount: first.lowerBound,
                                           trained: ranges.map { $0.clamped(to: 0..<ids.count) }.filter { !$0.isEmpty },
                                           evaluationPrompt: prompt.map { Int32($0) }, evaluationResponse: response))
                continue
            }
            let prompt = tokenizer.encode(example.prompt).map { Int32($0) }
            guard prompt.count <= sequence else {
                summary.droppedLongPrompt += 1
                continue
            }
            var ids = prompt + tokenizer.encode(example.response).map { Int32($0) } + marker
            if ids.count > sequence + 1 {
                ids.removeLast(ids.count - (sequence + 1))
                summary.truncated += 1
            }
            kept.append(example)
            tokenized.append(Tokenized(ids: ids, promptCount: prompt.count))
        }
        summary.kept = kept.count
        guard !kept.isEmpty else {
            if summary.examples == 0 { throw DataError(file: source, .mismatch, "holds no examples") }
            throw DataError(file: source, .mismatch, "no example fits a sequence of \(sequence) tokens (\(summary))")
        }
        self.examples = kept
        self.tokenized = tokenized
        self.summary = summary
    }

    /// The end marker a tokenizer's responses get (see the type's documentation).
    public static func endMarker(for tokenizer: any Tokenizer) -> [Int32] {
        if let end = tokenizer.endOfText { return [Int32(end)] }
        return tokenizer.encode("\n").map { Int32($0) }
    }

    public func write(_ index: Int, ids: UnsafeMutableBufferPointer<Int32>, targets: UnsafeMutableBufferPointer<Int32>) {
        precondition(index >= 0 && index < count, "sample \(index) of \(count)")
        precondition(ids.count == sequence && targets.count == sequence, "buffers must hold \(sequence) ids")
        let example = tokenized[index], full = example.ids, L = full.count, P = example.promptCount
        if let trained = example.trained {
            for t in 0..<sequence {
                ids[t] = t < L ? full[t] : padding
                targets[t] = t + 1 < L && trained.contains { $0.contains(t + 1) } ? full[t + 1] : TrainingSample.ignored
            }
            return
        }
        for t in 0..<sequence {
            ids[t] = t < L ? full[t] : padding
            targets[t] = t + 1 >= P && t + 1 < L ? full[t + 1] : TrainingSample.ignored
        }
    }

    /// For exact-match evaluation by generation: example `index`'s prompt ids and the response text a
    /// correct generation spells before the end marker.
    public func evaluationPair(_ index: Int) -> (promptIDs: [Int32], response: String) {
        let example = tokenized[index]
        if let prompt = example.evaluationPrompt, let response = example.evaluationResponse { return (prompt, response) }
        return (Array(example.ids[..<example.promptCount]), examples[index].response)
    }
}
