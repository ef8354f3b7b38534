import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernels and collectives; the last line of each is `key=value` figures.",
        subcommands: [BenchGemm.self, BenchSVD.self, BenchAllReduce.self, BenchTrain.self, BenchTokenize.self])
}
