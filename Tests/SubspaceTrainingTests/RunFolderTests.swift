import Foundation
import Testing
import SubspaceModel
import SubspaceTestSupport
@testable import SubspaceTraining

/// The run folder as a unit (issue 17): its lock, its lineage, outputs that never overwrite inputs, and
/// data folders that keep a user's files.
@Suite struct RunFolderTests {
    func config(_ folder: String) -> TrainConfig {
        var c = TrainConfig()
        c.run.output = folder + "/run"
        c.data.path = folder + "/data"
        return c
    }

    @Test func secondHolderIsRefusedNamingTheFirst() throws {
        let folder = try TestFiles.temporaryFolder("lock")
        defer { TestFiles.cleanUp(folder) }
        let first = try RunFolder(config: config(folder))
        #expect(first.notes.isEmpty)
        do {
            _ = try RunFolder(config: config(folder))
            Issue.record("a second run on a held folder was let in")
        } catch let error as ConfigError {
            #expect(error.key == "run.output")
            #expect(error.message.contains("in use by another run (pid \(getpid()) on host \(ProcessInfo.processInfo.hostName)"), "\(error)")
        }
        first.release()
        let second = try RunFolder(config: config(folder))
        #expect(second.notes.isEmpty, "a released lock is not stale")
        second.release()
    }

    @Test func staleLockIsRecognised() throws {
        let folder = try TestFiles.temporaryFolder("stale")
        defer { TestFiles.cleanUp(folder) }
        try FileManager.default.createDirectory(atPath: folder + "/run", withIntermediateDirectories: true)
        try "pid 999999 on host elsewhere since 2026-01-01T00:00:00Z".write(toFile: folder + "/run/.lock", atomically: true, encoding: .utf8)
        let run = try RunFolder(config: config(folder))
        #expect(run.notes.count == 1 && run.notes[0].contains("stale lock (pid 999999 on host elsewhere"), "\(run.notes)")
        run.release()
    }

    @Test func runOutputThatIsAFileNamesTheKey() throws {
        let folder = try TestFiles.temporaryFolder("file")
        defer { TestFiles.cleanUp(folder) }
        try "x".write(toFile: folder + "/run", atomically: true, encoding: .utf8)
        #expect { try RunFolder(config: config(folder)) } throws: { error in
            let e = error as? ConfigError
            return e?.key == "run.output" && e?.message.contains("is a file, not a folder") == true
        }
        var c = config(folder)
        c.run.output = "/proc/subspace-run"
        #expect { try RunFolder(config: c) } throws: { error in
            let text = "\(error)"
            return text.contains("run.output: cannot create the folder /proc/subspace-run") && !text.contains("Domain")
        }
    }

    @Test func modelInsideTheRunFolderIsRefused() throws {
        let folder = try TestFiles.temporaryFolder("inside")
        defer { TestFiles.cleanUp(folder) }
        var c = config(folder)
        c.model.source = .hf
        c.model.path = folder + "/run/./final/"
        #expect { try RunFolder(config: c) } throws: { ($0 as? ConfigError)?.key == "model.path" }
        c.model.path = folder + "/run-base/final"
        try RunFolder(config: c).release()
    }

    @Test func freshStartOverEarlierWorkIsRefused() throws {
        let folder = try TestFiles.temporaryFolder("earlier")
        defer { TestFiles.cleanUp(folder) }
        var c = config(folder)
        c.checkpoint.resume = .never
        let run = try RunFolder(config: c)
        defer { run.release() }
        let lineage = RunLineage(config: c, model: ModelConfig(family: .gpt2, vocabularySize: 256, hiddenSize: 128, layerCount: 4,
                                                               headCount: 4, maxPositions: 64))
        try run.commit(config: c, lineage: lineage, start: 0)
        #expect(FileManager.default.fileExists(atPath: c.run.output + "/lineage.json"))
        try FileManager.default.createDirectory(atPath: c.run.output + "/final", withIntermediateDirectories: true)
        #expect { try run.commit(config: c, lineage: lineage, start: 0) } throws: { error in
            let e = error as? ConfigError
            return e?.key == "checkpoint.resume" && e?.message.contains("holds an earlier run (final/)") == true
        }
        // Another lineage in a folder with work: refused naming both values, unless asked for.
        var other = c
        other.training.learningRate = 0.01
        let otherLineage = RunLineage(config: other, model: ModelConfig(family: .gpt2, vocabularySize: 256, hiddenSize: 128,
                                                                        layerCount: 4, headCount: 4, maxPositions: 64))
        #expect { try run.commit(config: other, lineage: otherLineage, start: 5) } throws: { error in
            "\(error)".contains("training.optimizer: lr 0.001") && "\(error)".contains("→ lr 0.01")
        }
        other.checkpoint.allowOtherLineage = true
        try run.commit(config: other, lineage: otherLineage, start: 5)
    }

    @Test func lineageRoundTripsAndIgnoresReshardingSettings() throws {
        let model = ModelConfig(family: .gpt2, vocabularySize: 256, hiddenSize: 128, layerCount: 4, headCount: 4, maxPositions: 64)
        var a = TrainConfig()
        let lineage = RunLineage(config: a, model: model)
        #expect(RunLineage(json: lineage.json) == lineage)
        a.training.zeroStage = 3
        a.training.microBatch = 3
        a.training.steps = 5000
        a.run.output = "elsewhere"
        #expect(RunLineage(config: a, model: model) == lineage)
        a.data.kind = .sft
        #expect(RunLineage(config: a, model: model).differences(from: lineage).first?.hasPrefix("data: corpus ") == true)
    }

    /// The precision of the products changes the trajectory, so it is part of the lineage; a lineage
    /// recorded before it was (no training.precision) is read as an fp32 run's.
    @Test func lineageRecordsPrecision() throws {
        let model = ModelConfig(family: .gpt2, vocabularySize: 256, hiddenSize: 128, layerCount: 4, headCount: 4, maxPositions: 64)
        var c = TrainConfig()
        let fp32 = RunLineage(config: c, model: model)
        c.training.precision = .bf16
        let bf16 = RunLineage(config: c, model: model)
        #expect(bf16 != fp32)
        #expect(bf16.differences(from: fp32) == ["training.precision: fp32 → bf16"])
        #expect(fp32.differences(from: bf16) == ["training.precision: bf16 → fp32"])
        var older = fp32
        older.entries.removeAll { $0.key == "training.precision" }
        let read = try #require(RunLineage(json: older.json))
        #expect(read == fp32)
        #expect(bf16.differences(from: read) == ["training.precision: fp32 → bf16"])
    }

    @Test func dataFoldersKeepTheUsersFiles() throws {
        let folder = try TestFiles.temporaryFolder("userdata")
        defer { TestFiles.cleanUp(folder) }
        #expect(OutputFolder.sftProblem(folder) == nil)
        #expect(OutputFolder.sftProblem(folder + "/missing") == nil)
        try "mine".write(toFile: folder + "/train.jsonl", atomically: true, encoding: .utf8)
        #expect(OutputFolder.sftProblem(folder)?.contains("did not write (train.jsonl)") == true)
        _ = try SFTGenerator(seed: 1).write(to: folder, train: 4, test: 1)
        #expect(OutputFolder.sftProblem(folder) == nil, "its own earlier output may be replaced")
        #expect(OutputFolder.corpusProblem(folder)?.contains("README.md, test.jsonl, train.jsonl") == true)
    }

    @Test func memoryEstimateNamesTheCostliestKey() throws {
        var c = TrainConfig()
        let small = MemoryEstimate(config: c, model: try c.modelShape(), worldSize: 1)
        #expect(small.total > 1e6 && small.total < 1e9, "\(small.total)")
        #expect(small.problem(available: 16e9, ranksHere: 2) == nil)
        c.model.vocab = 100_000_000
        let huge = MemoryEstimate(config: c, model: try c.modelShape(), worldSize: 2)
        let problem = try #require(huge.problem(available: 16e9, ranksHere: 2))
        #expect(problem.key == "model.vocab" && problem.message.contains("model.vocab 100000000"), "\(problem)")
        #expect(throws: ConfigError.self) { try huge.check(available: 16e9, ranksHere: 2) }
        // ZeRO-3 over 64 ranks shards what stage 0 replicates.
        c.training.zeroStage = 3
        #expect(MemoryEstimate(config: c, model: try c.modelShape(), worldSize: 64).terms[0].bytes < huge.terms[0].bytes / 4)
    }
}
