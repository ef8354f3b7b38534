import Foundation
import SubspaceCore

/// The default SFT set: synthetic arithmetic for a byte-level model, deterministic in the seed.
///
/// A problem is `"Q: 37+48=?\nA: "` → `"85"`: addition of two numbers in 0…99, subtraction `a-b` with
/// 0 ≤ b ≤ a ≤ 99 (never negative), or multiplication of a number in 0…99 by one in 2…9, the operation
/// drawn uniformly. There are 15,850 distinct problems.
///
/// The test split is drawn first, from `RandomStream(seed).split(1)`, then the train split from
/// `split(0)`, skipping any problem already drawn (into either split), so no prompt is in both and none
/// repeats. The test set therefore does not depend on the train size, and a smaller train set is a prefix
/// of a larger one with the same seed and test size.
public struct SFTGenerator: Sendable {
    public enum Operation: String, Sendable, CaseIterable {
        case addition = "+", subtraction = "-", multiplication = "*"
    }

    /// Distinct problems there are: 100·100 sums + 5,050 differences + 100·8 products.
    public static let distinctProblems = 100 * 100 + 5050 + 100 * 8
    /// At most this many examples (train + test) per set, so drawing without repeats stays fast.
    public static let maximumExamples = 10_000

    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    /// The example for `a op b`.
    public static func example(_ a: Int, _ operation: Operation, _ b: Int) -> SFTExample {
        let result: Int
        switch operation {
        case .addition: result = a + b
        case .subtraction: result = a - b
        case .multiplication: result = a * b
        }
        return SFTExample(prompt: "Q: \(a)\(operation.rawValue)\(b)=?\nA: ", response: String(result))
    }

    /// A uniformly drawn problem.
    static func draw(_ rng: inout RandomStream) -> SFTExample {
        switch Operation.allCases[rng.nextInt(below: 3)] {
        case .addition:
            return example(rng.nextInt(below: 100), .addition, rng.nextInt(below: 100))
        case .subtraction:
            let a = rng.nextInt(below: 100)
            return example(a, .subtraction, rng.nextInt(below: a + 1))
        case .multiplication:
            return example(rng.nextInt(below: 100), .multiplication, 2 + rng.nextInt(below: 8))
        }
    }

    /// `train` and `test` examples with distinct prompts. Throws when `train + test` exceeds `maximumExamples`.
    public func generate(train: Int, test: Int) throws -> (train: [SFTExample], test: [SFTExample]) {
        guard train >= 0, test >= 0, train + test <= Self.maximumExamples else {
            throw DataError(file: "<generated>", .mismatch,
                            "asked for \(train) train and \(test) test examples; each must be ≥ 0 and together ≤ \(Self.maximumExamples)")
        }
        var seen = Set<String>()
        func take(_ n: Int, from stream: UInt64) -> [SFTExample] {
            var rng = RandomStream(seed: seed).split(stream)
            var out: [SFTExample] = []
            out.reserveCapacity(n)
            while out.count < n {
                let example = Self.draw(&rng)
                if seen.insert(example.prompt).inserted { out.append(example) }
            }
            return out
        }
        let testSet = take(test, from: 1)
        return (take(train, from: 0), testSet)
    }

    /// Writes `train.jsonl`, `test.jsonl` (`{"prompt", "response"}` lines) and `README.md` into `folder`
    /// (created if missing); returns the examples.
    @discardableResult
    public func write(to folder: String, train: Int, test: Int) throws -> (train: [SFTExample], test: [SFTExample]) {
        let sets = try generate(train: train, test: test)
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw DataError(file: folder, .io, "cannot create the folder: \(FileSystemMessage.reason(error))")
        }
        func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        try AtomicFile.write(try SFTJSONL.encode(sets.train), to: path("train.jsonl"))
        try AtomicFile.write(try SFTJSONL.encode(sets.test), to: path("test.jsonl"))
        try AtomicFile.write(Array(readme(train: sets.train.count, test: sets.test.count).utf8), to: path("README.md"))
        return sets
    }

    static let readmeTitle = "# Arithmetic SFT set (synthetic)"

    func readme(train: Int, test: Int) -> String {
        """
        \(Self.readmeTitle)

        Made by `subspace data sft --seed \(seed) --train \(train) --test \(test)`; the same command makes
        the same files byte for byte.

        | file | holds |
        | --- | --- |
        | `train.jsonl` | \(train) examples |
        | `test.jsonl` | \(test) examples, no prompt of which is in `train.jsonl` |

        Each line is `{"prompt": "Q: 37+48=?\\nA: ", "response": "85"}`: a sum of two numbers in 0–99, a
        difference `a-b` with 0 ≤ b ≤ a ≤ 99, or a product of a number in 0–99 and one in 2–9, each
        operation a third of the time. No prompt appears twice in the folder.

        ## Why this set

        It is the default fine-tuning task because it is:

        - **small**: a few hundred kilobytes, generated in well under a second, no download;
        - **scorable by exact match**: a generation is right or wrong, so accuracy on `test.jsonl` (greedy
          decoding until the end marker) is a clear number, unlike a loss;
        - **within reach of a tiny byte-level model in minutes**: prompts are at most 14 bytes and answers
          at most 3 digits, so a context of 32 bytes holds a whole example, and a model of a few layers
          picks up the format almost at once and then the arithmetic itself, on a CPU.

        With the byte tokenizer each response is trained with a trailing `"\\n"` as its end marker (the
        tokenizer has no special tokens), and only the response and that marker count in the loss; the
        prompt is masked out. See `SFTDataset` in `Sources/SubspaceTraining/Data`.

        """
    }
}
