// placeholder until the module's files land
