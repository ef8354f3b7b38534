extension TrainConfig {
    /// The whole config as YAML, every key present with defaults filled in and `lora: null` when LoRA is
    /// off: what a run keeps as `config.resolved.yaml`. `load(yaml:)` reads it back to an equal config.
    public func resolvedYAML() -> String {
        var out = "# Every key of this run's configuration, defaults filled in (TrainConfig.resolvedYAML).\n"
        for section in Self.schema {
            guard let values = section.yaml(self) else {
                out += "\(section.name): null\n"
                continue
            }
            out += "\(section.name):\n"
            for (name, value) in values { out += "  \(name): \(value)\n" }
        }
        return out
    }
}
