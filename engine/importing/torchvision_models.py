def import_torchvision(name, input_shape=None): raise NotImplementedError
