import Foundation
import SubspaceModel
@testable import SubspaceTraining
@testable import SubspaceStudies
import SubspaceTestSupport

/// A small byte-level corpus (the tokenizer fixture's play) and tiny configs for the study tests.
enum StudyTestSupport {
    /// Built once per test process.
    static let corpus: String = {
        let text = try! TestFiles.temporaryFolder("study-text")
        try! FileManager.default.copyItem(atPath: TestFiles.longText, toPath: text + "/play.txt")
        let output = try! TestFiles.temporaryFolder("study-corpus")
        _ = try! CorpusBuilder(tokenizer: "bytes", validationFraction: 0.1, threads: 1).build(input: text, output: output)
        return output
    }()

    /// A 2-layer gpt2 of width 32 on the corpus: a few seconds per run.
    static func trainConfig(output: String, steps: Int = 4) -> TrainConfig {
        var c = TrainConfig()
        c.run.output = output
        c.run.seed = 3
        c.model.layers = 2
        c.model.width = 32
        c.model.heads = 4
        c.model.context = 32
        c.data.path = corpus
        c.data.sequence = 32
        c.training.steps = steps
        c.training.globalBatch = 4
        c.training.microBatch = 2
        c.training.warmup = 1
        c.training.learningRate = 3e-3
        c.training.minLearningRate = 3e-4
        c.evaluation.every = 2
        c.evaluation.sequences = 4
        c.evaluation.exactMatch = 0
        c.checkpoint.every = 0
        c.checkpoint.resume = .never
        return c
    }
}
