WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")
def propose_from_file(path, input_shape=None): raise NotImplementedError
