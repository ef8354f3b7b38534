import ArgumentParser

@main
struct Subspace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subspace",
        abstract: "Distributed training of GPT-style transformers on CPU clusters, and what fine-tuning does to their weights.",
        subcommands: [Pipeline.self, Index.self, Train.self, DataCommand.self, DeltaSVD.self, LoRAX.self, Compare.self, Params.self, QKFreeze.self, LoRANullCommand.self, Heads.self, Forward.self, Generate.self, Eval.self, Tokenize.self, Smoke.self, Bench.self])
}
