import ArgumentParser
import Foundation
import SubspaceTraining

/// `subspace data corpus|sft`: prepare training data on one machine, before any MPI job.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Prepare training data: token shards from a folder of texts, or the synthetic arithmetic SFT set.",
        subcommands: [Corpus.self, SFT.self])

    /// Folder of texts → train.bin, val.bin, corpus.json.
    struct Corpus: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tokenize a folder of .txt files into train/validation token shards with a corpus.json manifest.",
            discussion: """
                The validation split is the last --validation-fraction of every file (cut at a line start), \
                so each file contributes to both splits and no text is in both. Get Shakespeare's plays with \
                `launch/fetch-corpus DIR`.
                """)

        @Option(help: ArgumentHelp("Folder of UTF-8 .txt files (read in name order).", valueName: "dir"))
        var input: String

        @Option(help: ArgumentHelp("Folder to write train.bin, val.bin and corpus.json into (created if missing).", valueName: "dir"))
        var output: String

        @Option(help: ArgumentHelp(
            "'bytes' for one id per UTF-8 byte, or a byte-level BPE tokenizer.json (or a folder holding one).",
            valueName: "bytes|file"))
        var tokenizer = "bytes"

        @Option(help: "Fraction of each file held out for validation, in [0, 1).")
        var validationFraction = 0.1

        @Option(help: "Threads for encoding (default: the cores this process may use).")
        var threads: Int?

        func validate() throws {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else {
                throw ValidationError("--input \(input): no such folder")
            }
            guard isFolder.boolValue else { throw ValidationError("--input \(input): not a folder") }
            do { _ = try CorpusBuilder.sourceFiles(in: input) } catch let error as DataError {
                throw ValidationError("--input \(input): \(error.reason)")
            }
            if FileManager.default.fileExists(atPath: output, isDirectory: &isFolder), !isFolder.boolValue {
                throw ValidationError("--output \(output): exists and is not a folder")
            }
            if let problem = OutputFolder.corpusProblem(output) { throw ValidationError("--output \(problem)") }
            guard validationFraction.isFinite, validationFraction >= 0, validationFraction < 1 else {
                throw ValidationError("--validation-fraction \(validationFraction) is not in [0, 1)")
            }
            if tokenizer != "bytes", !FileManager.default.fileExists(atPath: tokenizer) {
                throw ValidationError("--tokenizer \(tokenizer): no such file (give 'bytes' or a tokenizer.json)")
            }
            if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        }

        func run() throws {
            let start = DispatchTime.now().uptimeNanoseconds
            let builder = try CorpusBuilder(tokenizer: tokenizer, validationFraction: validationFraction, threads: threads)
            print("data corpus: \(input) → \(output), tokenizer \(tokenizer) (\(builder.tokenizer.vocabularySize) ids), validation fraction \(validationFraction), \(builder.threads) threads")
            let manifest = try builder.build(input: input, output: output) { source in
                print("  \(source.file): \(source.bytes) bytes → \(source.trainTokens) train + \(source.validationTokens) validation tokens")
            }
            if manifest.validation.tokens == 0 {
                print("data corpus: no validation tokens (--validation-fraction \(validationFraction)), so `subspace train` on this corpus will not evaluate")
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let bytes = manifest.sources.reduce(0) { $0 + $1.bytes }
            print("data corpus: \(manifest.sources.count) files, \(bytes) bytes → train.bin \(manifest.train.tokens) tokens, val.bin \(manifest.validation.tokens) tokens (\(manifest.dtype.rawValue)) in \(String(format: "%.2f", seconds)) s")
            // Read back as training will: sizes, dtype and checksums against the manifest just written.
            let checkStart = DispatchTime.now().uptimeNanoseconds
            let shards = try TokenShards(folder: output)
            let checkSeconds = Double(DispatchTime.now().uptimeNanoseconds - checkStart) * 1e-9
            print("data corpus: \(output) opens and checks (\(shards.train.count + shards.validation.count) tokens, SHA-256 verified) in \(String(format: "%.2f", checkSeconds)) s")
            print("files=\(manifest.sources.count) bytes=\(bytes) train_tokens=\(manifest.train.tokens) val_tokens=\(manifest.validation.tokens) dtype=\(manifest.dtype.rawValue) seconds=\(String(format: "%.3f", seconds)) check_seconds=\(String(format: "%.3f", checkSeconds))")
        }
    }

    /// The synthetic arithmetic SFT set.
    struct SFT: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sft",
            abstract: "Write the synthetic arithmetic SFT set (train.jsonl, test.jsonl, README.md); the same seed gives the same files.")

        @Option(help: ArgumentHelp("Folder to write into (created if missing).", valueName: "dir"))
        var output: String

        @Option(help: "Seed of the draw.")
        var seed: UInt64 = 1

        @Option(help: "Training examples.")
        var train = 5000

        @Option(help: "Test examples (no prompt shared with the training examples).")
        var test = 200

        func validate() throws {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: output, isDirectory: &isFolder), !isFolder.boolValue {
                throw ValidationError("--output \(output): exists and is not a folder")
            }
            if let problem = OutputFolder.sftProblem(output) { throw ValidationError("--output \(problem)") }
            guard train >= 1 else { throw ValidationError("--train must be at least 1") }
            guard test >= 0 else { throw ValidationError("--test must not be negative") }
            guard train + test <= SFTGenerator.maximumExamples else {
                throw ValidationError("--train plus --test must be at most \(SFTGenerator.maximumExamples) (there are \(SFTGenerator.distinctProblems) distinct problems)")
            }
        }

        func run() throws {
            let sets = try SFTGenerator(seed: seed).write(to: output, train: train, test: test)
            print("data sft: wrote \(sets.train.count) train and \(sets.test.count) test examples (seed \(seed)) to \(output)")
            if let first = sets.train.first {
                print("  e.g. prompt \(first.prompt.debugDescription) response \(first.response.debugDescription)")
            }
        }
    }
}
