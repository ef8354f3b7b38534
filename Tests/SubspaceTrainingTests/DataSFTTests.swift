import Foundation
import Testing
import SubspaceModel
@testable import SubspaceTraining

@Suite struct DataSFTTests {
    typealias S = DataTestSupport
    let ignored = TrainingSample.ignored

    func dataset(_ jsonl: String, sequence: Int, tokenizer: any Tokenizer = ByteTokenizer()) throws -> SFTDataset {
        try SFTDataset(examples: try SFTJSONL.parse(jsonl, file: "test.jsonl"), tokenizer: tokenizer, sequence: sequence)
    }

    func bytes(_ s: String) -> [Int32] { s.utf8.map { Int32($0) } }

    @Test func promptResponseMasking() throws {
        let data = try dataset(#"{"prompt": "ab", "response": "cd"}"#, sequence: 8)
        #expect(data.endMarker == [10] && data.stopTokens == [10])
        // full = a b c d \n (prompt 2): only c, d and the end marker are targets.
        #expect(data.sample(0) == TrainingSample(
            ids: [97, 98, 99, 100, 10, 0, 0, 0],
            targets: [ignored, 99, 100, 10, ignored, ignored, ignored, ignored]))
        let pair = data.evaluationPair(0)
        #expect(pair.promptIDs == [97, 98] && pair.response == "cd")
        // "completion" is read as "response".
        let completion = try dataset(#"{"prompt": "ab", "completion": "cd"}"#, sequence: 8)
        #expect(completion.sample(0) == data.sample(0))
    }

    @Test func instructionMasking() throws {
        let data = try dataset("""
            {"instruction": "x", "input": "y", "output": "z"}
            {"instruction": "x", "input": "", "output": "z"}
            {"instruction": "x", "output": "z"}
            """, sequence: 6)
        #expect(data.examples[0] == SFTExample(prompt: "x\ny", response: "z"))
        #expect(data.examples[1] == SFTExample(prompt: "x", response: "z"))
        #expect(data.examples[2] == data.examples[1])
        // full = x \n y z \n (prompt 3)
        #expect(data.sample(0) == TrainingSample(
            ids: [120, 10, 121, 122, 10, 0],
            targets: [ignored, ignored, 122, 10, ignored, ignored]))
        // full = x z \n (prompt 1)
        #expect(data.sample(1) == TrainingSample(
            ids: [120, 122, 10, 0, 0, 0],
            targets: [122, 10, ignored, ignored, ignored, ignored]))
    }

    @Test func messagesMasking() throws {
        let line = #"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, "#
            + #"{"role": "assistant", "content": "a"}, {"role": "user", "content": "ignored"}]}"#
        let data = try dataset(line, sequence: 32)
        let prompt = "system: s\nuser: u\nassistant: "
        #expect(data.examples[0].prompt == prompt && data.examples[0].response == "a")
        #expect(data.examples[0].messages?.count == 4)
        let P = prompt.utf8.count  // 29
        let full = bytes(prompt) + [97, 10]
        var targets = [Int32](repeating: ignored, count: 32)
        targets[P - 1] = 97
        targets[P] = 10
        #expect(data.sample(0) == TrainingSample(ids: full + [0], targets: targets))
        // Multi-turn: the last assistant message is the response, earlier ones are prompt.
        let turns = try SFTJSONL.parse(#"{"messages": [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "3"}, {"role": "assistant", "content": "4"}]}"#, file: "t")
        #expect(turns.map(\.prompt) == ["user: 1\nassistant: 2\nuser: 3\nassistant: "] && turns.map(\.response) == ["4"])
    }

    @Test func truncationAndDropping() throws {
        let data = try dataset("""
            {"prompt": "abc", "response": "defg"}
            {"prompt": "abcde", "response": "f"}
            {"prompt": "abcd", "response": "ef"}
            {"prompt": "ab", "response": "c"}
            """, sequence: 4)
        #expect(data.summary == .init(examples: 4, kept: 3, droppedLongPrompt: 1, truncated: 2))
        #expect(data.count == 3)
        // a b c d e (cut from a b c d e f g \n): targets d, e.
        #expect(data.sample(0) == TrainingSample(ids: [97, 98, 99, 100], targets: [ignored, ignored, 100, 101]))
        // The prompt fills the sequence: one target, the first response id.
        #expect(data.sample(1) == TrainingSample(ids: [97, 98, 99, 100], targets: [ignored, ignored, ignored, 101]))
        #expect(data.sample(2) == TrainingSample(ids: [97, 98, 99, 10], targets: [ignored, 99, 10, ignored]))
        #expect(data.evaluationPair(1).response == "ef")
        #expect(throws: DataError.self) { try dataset(#"{"prompt": "abcdef", "response": "x"}"#, sequence: 4) }
        func message(_ jsonl: String) -> String {
            do { _ = try dataset(jsonl, sequence: 4); return "" } catch { return "\(error)" }
        }
        #expect(message(#"{"prompt": "abcdef", "response": "x"}"#).contains("no example fits a sequence of 4 tokens"))
        // An empty file says so, not that nothing fits.
        #expect(message("").hasSuffix("holds no examples"), "\(message(""))")
    }

    @Test func bpeEndMarkerIsEndOfText() throws {
        let tokenizer = try Tokenizers.load(S.bpeTokenizer)
        let eot = Int32(try #require(tokenizer.endOfText))
        let data = try dataset(#"{"prompt": "Q: 1+1=?\nA: ", "response": "2"}"#, sequence: 32, tokenizer: tokenizer)
        #expect(data.endMarker == [eot])
        let prompt = tokenizer.encode("Q: 1+1=?\nA: ").map { Int32($0) }
        let response = tokenizer.encode("2").map { Int32($0) }
        let full = prompt + response + [eot]
        let sample = data.sample(0)
        #expect(Array(sample.ids[..<full.count]) == full)
        let counted = sample.targets.enumerated().filter { $0.element != ignored }
        #expect(counted.map(\.offset) == Array(prompt.count - 1..<full.count - 1))
        #expect(counted.map(\.element) == response + [eot])
    }

    func lineError(_ jsonl: String) -> DataError? {
        do {
            _ = try SFTJSONL.parse(jsonl, file: "/data/train.jsonl")
            return nil
        } catch let error as DataError {
            return error
        } catch {
            return nil
        }
    }

    @Test func badLinesAreNamed() throws {
        let good = #"{"prompt": "a", "response": "b"}"#
        let cases: [(String, Int, String)] = [
            ("\(good)\n\n{not json", 3, "not valid JSON"),
            ("\(good)\r\n[1, 2]\r\n", 2, "not a JSON object"),
            ("\(good)\n\(good)\n{\"prompt\": \"a\"}", 3, "no string 'response'"),
            ("{\"prompt\": 3, \"response\": \"b\"}", 1, "'prompt' is not a string"),
            ("{\"question\": \"a\", \"answer\": \"b\"}", 1, "found 'answer', 'question'"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", 1, "no message with role 'assistant'"),
            ("{\"messages\": [{\"role\": \"user\"}]}", 1, "messages[0] has no string 'content'"),
            ("{\"instruction\": \"a\"}", 1, "no string 'output'"),
        ]
        for (text, line, reason) in cases {
            let error = lineError(text)
            #expect(error?.line == line, "\(text.debugDescription)")
            #expect(error?.kind == .jsonl)
            #expect(error?.description.hasPrefix("/data/train.jsonl:\(line): ") == true, "\(String(describing: error))")
            #expect(error?.reason.contains(reason) == true, "\(String(describing: error)) should say \(reason)")
        }
        // CRLF lines and blank lines are fine.
        #expect(try SFTJSONL.parse("\(good)\r\n\r\n   \n\(good)\r\n", file: "x").count == 2)
        // A file that does not exist names the file.
        #expect(throws: DataError.self) { try SFTJSONL.read(file: "/nonexistent/train.jsonl") }
    }

    @Test func generatorIsDeterministicAndSplitsAreDisjoint() throws {
        let generator = SFTGenerator(seed: 7)
        let a = try generator.generate(train: 3000, test: 300)
        let b = try SFTGenerator(seed: 7).generate(train: 3000, test: 300)
        #expect(a.train == b.train && a.test == b.test)
        #expect(a.train.count == 3000 && a.test.count == 300)
        let trainPrompts = Set(a.train.map(\.prompt)), testPrompts = Set(a.test.map(\.prompt))
        #expect(trainPrompts.count == 3000 && testPrompts.count == 300, "no prompt repeats")
        #expect(trainPrompts.isDisjoint(with: testPrompts))
        #expect(try SFTGenerator(seed: 8).generate(train: 3000, test: 300).train != a.train)
        // The test set does not depend on the train size; a smaller train set is a prefix.
        let smaller = try generator.generate(train: 100, test: 300)
        #expect(smaller.test == a.test && smaller.train == Array(a.train.prefix(100)))
        // Every answer is right, and all three operations occur.
        var operations = Set<Character>()
        for example in a.train + a.test {
            let body = example.prompt.dropFirst(3).prefix { $0 != "=" }
            let op = try #require(body.first { "+-*".contains($0) })
            operations.insert(op)
            let operands = body.split(separator: op).map { Int($0)! }
            let value = op == "+" ? operands[0] + operands[1] : op == "-" ? operands[0] - operands[1] : operands[0] * operands[1]
            #expect(example.response == String(value) && value >= 0)
            #expect(example.prompt == "Q: \(operands[0])\(op)\(operands[1])=?\nA: ")
        }
        #expect(operations == ["+", "-", "*"])
        #expect(throws: DataError.self) { try generator.generate(train: SFTGenerator.maximumExamples, test: 1) }
    }

    @Test func generatorFilesReadBack() throws {
        let folder = try S.temporaryFolder("sft"), again = try S.temporaryFolder("sft")
        defer { S.cleanUp(folder); S.cleanUp(again) }
        let sets = try SFTGenerator(seed: 3).write(to: folder, train: 500, test: 50)
        try SFTGenerator(seed: 3).write(to: again, train: 500, test: 50)
        for name in ["train.jsonl", "test.jsonl", "README.md"] {
            let first = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
            #expect(first == (try Data(contentsOf: URL(fileURLWithPath: again + "/" + name))), "\(name) is the same byte for byte")
        }
        #expect(try SFTJSONL.read(file: folder + "/train.jsonl") == sets.train)
        #expect(try SFTJSONL.read(file: folder + "/test.jsonl") == sets.test)
        let firstLine = try String(contentsOfFile: folder + "/train.jsonl", encoding: .utf8).prefix { $0 != "\n" }
        #expect(firstLine.hasPrefix(#"{"prompt":"Q: "#) && firstLine.contains(#"=?\nA: ","response":""#))
        let data = try SFTDataset(file: folder + "/test.jsonl", tokenizer: ByteTokenizer(), sequence: 24)
        #expect(data.count == 50 && data.summary.truncated == 0 && data.summary.droppedLongPrompt == 0)
        let readme = try String(contentsOfFile: folder + "/README.md", encoding: .utf8)
        #expect(readme.contains("exact match") && readme.contains("--seed 3 --train 500 --test 50"))
    }
}
